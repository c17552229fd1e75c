//! The block padding modes of `crypt.desencode`/`crypt.desdecode`, exposed to Lua as
//! `crypt.padding = { iso7816_4 = 0, pkcs7 = 1 }`.

use crate::{Error, Result};

/// How the last, partial block of a DES text is completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Padding {
    /// ISO/IEC 7816-4: one `0x80` byte, then zeros. The default (mode 0).
    #[default]
    Iso7816_4 = 0,
    /// PKCS#7: `n` bytes of value `n` (1 to 8). Mode 1.
    Pkcs7 = 1,
}

impl Padding {
    /// Every mode with its `crypt.padding` name, in mode-number order.
    pub const ALL: [(&'static str, Padding); 2] =
        [("iso7816_4", Padding::Iso7816_4), ("pkcs7", Padding::Pkcs7)];

    /// The mode numbered `mode`, or `Invalid padding mode N`.
    pub fn from_mode(mode: i32) -> Result<Padding> {
        match mode {
            0 => Ok(Padding::Iso7816_4),
            1 => Ok(Padding::Pkcs7),
            _ => Err(Error::PaddingMode(mode)),
        }
    }

    /// The final block for the trailing `rest` of a text (`rest` is shorter than 8
    /// bytes; anything longer is cut to its first 7 bytes).
    pub fn fill(self, rest: &[u8]) -> [u8; 8] {
        let used = rest.len().min(7);
        let mut block = match self {
            Padding::Iso7816_4 => {
                let mut b = [0u8; 8];
                b[used] = 0x80;
                b
            }
            Padding::Pkcs7 => [(8 - used) as u8; 8],
        };
        block[..used].copy_from_slice(&rest[..used]);
        block
    }

    /// How many bytes at the end of `last` (the last decrypted block) are padding, or
    /// `None` if they are not valid padding of this mode.
    ///
    /// ISO 7816-4: zeros back to a `0x80`, which must be within the block. PKCS#7: the
    /// last byte `n` must be 1 to 8 and the last `n` bytes must all be `n`.
    pub fn padding_len(self, last: &[u8; 8]) -> Option<usize> {
        match self {
            Padding::Iso7816_4 => {
                let zeros = last.iter().rev().take_while(|&&b| b == 0).count();
                let marker = last.len().checked_sub(zeros + 1)?;
                (last[marker] == 0x80).then_some(zeros + 1)
            }
            Padding::Pkcs7 => {
                let n = last[7] as usize;
                let valid = (1..=8).contains(&n) && last[8 - n..].iter().all(|&b| b as usize == n);
                valid.then_some(n)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_and_strip_agree() {
        for mode in [Padding::Iso7816_4, Padding::Pkcs7] {
            for used in 0..8 {
                let rest: Vec<u8> = (1..=used as u8).collect();
                let block = mode.fill(&rest);
                assert_eq!(&block[..used], &rest[..]);
                assert_eq!(mode.padding_len(&block), Some(8 - used));
            }
        }
    }

    #[test]
    fn bad_padding() {
        let iso = Padding::Iso7816_4;
        assert_eq!(iso.padding_len(&[0; 8]), None);
        assert_eq!(iso.padding_len(&[1, 2, 3, 4, 5, 6, 7, 8]), None);
        assert_eq!(iso.padding_len(&[1, 2, 3, 4, 5, 0x80, 7, 0]), None);
        assert_eq!(iso.padding_len(&[0x80, 0, 0, 0, 0, 0, 0, 0]), Some(8));
        let pk = Padding::Pkcs7;
        assert_eq!(pk.padding_len(&[0; 8]), None);
        assert_eq!(pk.padding_len(&[9; 8]), None);
        assert_eq!(pk.padding_len(&[1, 2, 3, 4, 5, 6, 3, 2]), None);
        assert_eq!(pk.padding_len(&[8; 8]), Some(8));
        assert_eq!(Padding::from_mode(2), Err(Error::PaddingMode(2)));
        assert_eq!(Padding::from_mode(-1), Err(Error::PaddingMode(-1)));
    }
}
