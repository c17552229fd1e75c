//! Throughput of encode+pack and unpack+decode, for the skynet_sample `signin` request
//! and a ~1 KB nested message. Run with `cargo run --release -p sproto --example bench`.
//!
//! Two paths are timed per message: the `Value` tree model, and a direct callback
//! source/sink (what a binding does: no intermediate tree, reused buffers).

use std::hint::black_box;
use std::time::{Duration, Instant};

use sproto::{
    FieldValue, FieldWriter, Sproto, StructSink, StructSource, Value, ValueBuilder, ValueSource,
};

const C2S: &str = "
.package { type 0 : integer  session 1 : integer  ud 2 : string }
ping 1 {}
signup 2 { request { userid 0 : string } response { ok 0 : boolean } }
signin 3 { request { userid 0 : string } response { ok 0 : boolean } }
login 4 { response { ok 0 : boolean } }
";

const GAME: &str = "
.Item { id 0 : integer  name 1 : string  count 2 : integer  price 3 : double  tags 4 : *string }
.Player {
    id 0 : integer  name 1 : string  level 2 : integer  online 3 : boolean
    pos 4 : *integer  gold 5 : integer(2)  items 6 : *Item
}
";

/// Runs `f` repeatedly for about `budget`; returns iterations per second.
fn rate(budget: Duration, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..256 {
            f();
        }
        n += 256;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn report(label: &str, per_sec: f64, bytes: usize) {
    println!(
        "{label:<44} {:>10.0} msg/s  {:>8.1} MB/s  ({bytes} B/msg)",
        per_sec,
        per_sec * bytes as f64 / 1e6
    );
}

/// Direct source for `signin.request`.
struct Signin<'a>(&'a [u8]);
impl StructSource for Signin<'_> {
    fn write_field(&mut self, w: FieldWriter<'_>) -> sproto::Result<()> {
        w.bytes(self.0)
    }
}

/// Sink that only touches the values (sums lengths), like a binding filling tables.
#[derive(Default)]
struct Touch(usize);
impl StructSink for Touch {
    fn field<'a>(&mut self, _: &'a sproto::Field, v: FieldValue<'a>) -> sproto::Result<()> {
        match v {
            FieldValue::Bytes(b) => self.0 += b.len(),
            FieldValue::Integer(i) => self.0 += i as usize & 1,
            FieldValue::Struct(r) => r.decode(self)?,
            FieldValue::Array(sproto::ArrayReader::Structs(items)) => {
                for item in items {
                    item?.decode(self)?;
                }
            }
            _ => self.0 += 1,
        }
        Ok(())
    }
}

fn player() -> Value {
    let items = (0..12)
        .map(|i| {
            Value::structure([
                ("id", Value::Integer(1000 + i)),
                ("name", Value::str(&format!("item-number-{i}"))),
                ("count", Value::Integer(i * 3)),
                ("price", Value::Double(i as f64 * 1.25)),
                (
                    "tags",
                    Value::Array(vec![Value::str("rare"), Value::str("tradable")]),
                ),
            ])
        })
        .collect();
    Value::structure([
        ("id", Value::Integer(123456789)),
        ("name", Value::str("a player with a longish name")),
        ("level", Value::Integer(42)),
        ("online", Value::Boolean(true)),
        (
            "pos",
            Value::Array(vec![
                Value::Integer(100),
                Value::Integer(-200),
                Value::Integer(300),
            ]),
        ),
        ("gold", Value::Double(12345.67)),
        ("items", Value::Array(items)),
    ])
}

fn main() {
    let budget = Duration::from_millis(700);
    let c2s = Sproto::parse(C2S).unwrap();
    let signin = c2s.type_index("signin.request").unwrap();
    let game = Sproto::parse(GAME).unwrap();
    let player_type = game.type_index("Player").unwrap();

    let (mut enc, mut packed, mut plain) = (Vec::new(), Vec::new(), Vec::new());

    // signin: direct callback path.
    let wire = c2s
        .encode_value(
            "signin.request",
            &Value::structure([("userid", Value::str("alice"))]),
        )
        .unwrap();
    let packed_signin = sproto::pack(&wire);
    let r = rate(budget, || {
        enc.clear();
        packed.clear();
        sproto::encode(&c2s, signin, &mut Signin(b"alice"), &mut enc).unwrap();
        sproto::pack_into(&enc, &mut packed);
        black_box(&packed);
    });
    report("signin encode+pack (callback)", r, wire.len());
    let r = rate(budget, || {
        plain.clear();
        sproto::unpack_into(black_box(&packed_signin), &mut plain).unwrap();
        let mut t = Touch::default();
        sproto::decode(&c2s, signin, &plain, &mut t).unwrap();
        black_box(t.0);
    });
    report("signin unpack+decode (callback)", r, wire.len());

    // signin: Value tree path.
    let v = Value::structure([("userid", Value::str("alice"))]);
    let r = rate(budget, || {
        enc.clear();
        sproto::encode(&c2s, signin, &mut ValueSource(&v), &mut enc).unwrap();
        black_box(sproto::pack(&enc));
    });
    report("signin encode+pack (Value)", r, wire.len());
    let r = rate(budget, || {
        let plain = sproto::unpack(black_box(&packed_signin)).unwrap();
        let mut b = ValueBuilder::default();
        sproto::decode(&c2s, signin, &plain, &mut b).unwrap();
        black_box(b.fields);
    });
    report("signin unpack+decode (Value)", r, wire.len());

    // ~1 KB nested message, Value tree path (source/sink walk the same tree shape).
    let p = player();
    let wire = game.encode_value("Player", &p).unwrap();
    let packed_player = sproto::pack(&wire);
    let r = rate(budget, || {
        enc.clear();
        packed.clear();
        sproto::encode(&game, player_type, &mut ValueSource(&p), &mut enc).unwrap();
        sproto::pack_into(&enc, &mut packed);
        black_box(&packed);
    });
    report("nested encode+pack (Value source)", r, wire.len());
    let r = rate(budget, || {
        plain.clear();
        sproto::unpack_into(black_box(&packed_player), &mut plain).unwrap();
        let mut t = Touch::default();
        sproto::decode(&game, player_type, &plain, &mut t).unwrap();
        black_box(t.0);
    });
    report("nested unpack+decode (callback sink)", r, wire.len());
    let r = rate(budget, || {
        let plain = sproto::unpack(black_box(&packed_player)).unwrap();
        black_box(game.decode_value("Player", &plain).unwrap());
    });
    report("nested unpack+decode (Value tree)", r, wire.len());
    println!(
        "nested message: {} bytes encoded, {} packed",
        wire.len(),
        packed_player.len()
    );
}
