//! [`check_decodable`]: JSON that every receiver can decode.
//!
//! serde_json's `RawValue` checks the grammar only, and the grammar allows `\u` escapes of a
//! lone UTF-16 surrogate (`"\ud800"`). No parser that yields Unicode strings can decode those —
//! serde_json itself, and so `decode_message` and every Rust client, refuses them — so a
//! payload carrying one would be accepted and then be unreadable. This walks the document
//! once, decoding every string and key, without building a tree.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Decodes and discards any JSON value.
struct Decodable;

impl<'de> Deserialize<'de> for Decodable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Decodable)
    }
}

impl<'de> Visitor<'de> for Decodable {
    type Value = Decodable;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Decodable, E> {
        Ok(Decodable)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Decodable, E> {
        Ok(Decodable)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Decodable, E> {
        Ok(Decodable)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Decodable, E> {
        Ok(Decodable)
    }
    fn visit_str<E>(self, _: &str) -> Result<Decodable, E> {
        Ok(Decodable)
    }
    fn visit_unit<E>(self) -> Result<Decodable, E> {
        Ok(Decodable)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Decodable, A::Error> {
        while seq.next_element::<Decodable>()?.is_some() {}
        Ok(Decodable)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Decodable, A::Error> {
        while map.next_entry::<Decodable, Decodable>()?.is_some() {}
        Ok(Decodable)
    }
}

/// Checks that `json` (already known to be JSON) decodes: every string and key is valid
/// Unicode. The error says where it does not.
pub fn check_decodable(json: &str) -> Result<(), String> {
    let mut d = serde_json::Deserializer::from_str(json);
    Decodable::deserialize(&mut d)
        .and_then(|_| d.end())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::check_decodable;

    #[test]
    fn lone_surrogates_do_not_decode_and_everything_else_does() {
        for ok in [
            r#"{"a":[1,-2,3.5,true,null,"x"],"\u00e9":{"b":"\ud83d\ude00"}}"#,
            "18446744073709551615",
            r#""\u0000""#,
        ] {
            assert_eq!(check_decodable(ok), Ok(()), "{ok}");
        }
        // serde_json names the problem ("lone leading surrogate in hex escape", "unexpected
        // end of hex escape") and where it is.
        for bad in [r#""\ud800""#, r#"{"\udc00":1}"#, r#"[1,"a\ud83dz"]"#] {
            let e = check_decodable(bad).unwrap_err();
            assert!(e.contains("escape") && e.contains("column"), "{bad}: {e}");
        }
    }
}
