//! Throughput of the `skynet.crypt` algorithms on a 1 KiB text (and an 8-byte MAC/DH
//! for the fixed-size ones). Run with
//! `cargo run --release -p skynet-crypt --example bench`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use skynet_crypt::{self as crypt, des, DesKey, Padding};

/// Runs `f` repeatedly for about `budget`; returns calls per second.
fn rate(budget: Duration, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..64 {
            f();
        }
        n += 64;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn report(name: &str, bytes: usize, per_sec: f64) {
    let mb = per_sec * bytes as f64 / 1e6;
    println!(
        "{name:<28} {:>10.0} calls/s  {:>8.2} us/call  {:>8.1} MB/s",
        per_sec,
        1e6 / per_sec,
        mb
    );
}

fn main() {
    let budget = Duration::from_millis(700);
    let text: Vec<u8> = (0..1024u32).map(|i| (i * 131 + 7) as u8).collect();
    let key = *b"\x13\x34\x57\x79\x9b\xbc\xdf\xf1";
    let n = text.len();

    report(
        "sha1 1 KiB",
        n,
        rate(budget, || {
            black_box(crypt::sha1(black_box(&text)));
        }),
    );
    report(
        "hmac_sha1 1 KiB",
        n,
        rate(budget, || {
            black_box(crypt::hmac_sha1(&key, black_box(&text)));
        }),
    );
    let k = DesKey::new(&key).unwrap();
    let mut out = vec![0u8; des::encrypted_len(n)];
    report(
        "desencode 1 KiB (into)",
        n,
        rate(budget, || {
            k.encrypt_into(black_box(&text), Padding::Iso7816_4, &mut out)
                .unwrap();
            black_box(&out);
        }),
    );
    report(
        "desencode 1 KiB (Vec, key)",
        n,
        rate(budget, || {
            black_box(crypt::des_encode(&key, black_box(&text), 0).unwrap());
        }),
    );
    let cipher = crypt::des_encode(&key, &text, 1).unwrap();
    report(
        "desdecode 1 KiB pkcs7",
        n,
        rate(budget, || {
            black_box(crypt::des_decode(&key, black_box(&cipher), 1).unwrap());
        }),
    );
    report(
        "base64encode 1 KiB",
        n,
        rate(budget, || {
            black_box(crypt::base64_encode(black_box(&text)));
        }),
    );
    let b64 = crypt::base64_encode(&text);
    report(
        "base64decode 1 KiB",
        n,
        rate(budget, || {
            black_box(crypt::base64_decode(black_box(&b64)).unwrap());
        }),
    );
    report(
        "hexencode 1 KiB",
        n,
        rate(budget, || {
            black_box(crypt::hex_encode(black_box(&text)));
        }),
    );
    report(
        "hmac64",
        8,
        rate(budget, || {
            black_box(crypt::hmac64(black_box(&key), &key).unwrap());
        }),
    );
    report(
        "dhexchange",
        8,
        rate(budget, || {
            black_box(crypt::dh_exchange(black_box(&key)).unwrap());
        }),
    );
}
