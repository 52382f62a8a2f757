//! A deserializer wrapper that reads JSON the way the OpenAPI document (JSON Schema) describes
//! it, where serde alone differs:
//!
//! - an object is an object: serde reads a struct from a positional array too
//!   (`["technician", "…"]` would log in), which JSON Schema's `type: object` refuses;
//! - an integer is a number without a fractional part: JSON Schema counts `563.0` as an
//!   integer, serde_json refuses it for an integer field;
//! - what was expected is said in JSON's words (`a JSON object`, `an integer from 0 to 255`),
//!   never with a Rust type name (`struct RegisterPatient`, `u8`).
//!
//! Every nested value is read through the wrapper too (sequences, maps, options, enums), so
//! the rules hold at every depth.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Unexpected,
    VariantAccess, Visitor,
};

/// Wraps a deserializer; see the module documentation.
pub struct Strict<D>(pub D);

/// What the visitor was asked to read, for its message and for the refusals above.
#[derive(Clone, Copy)]
enum Want {
    /// Whatever the inner visitor reads; its own message.
    Any,
    /// A struct: only from a JSON object.
    Object,
    /// An enum: one of its documented values.
    Enum,
    /// An integer within the bounds.
    Int { min: i128, max: i128 },
    /// A number.
    Number,
}

struct StrictVisitor<V> {
    inner: V,
    want: Want,
}

impl<V> StrictVisitor<V> {
    fn new(inner: V, want: Want) -> Self {
        StrictVisitor { inner, want }
    }
}

struct StrictSeed<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for StrictSeed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(Strict(d))
    }
}

macro_rules! forward_any {
    ($($method:ident),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
                self.0.$method(StrictVisitor::new(visitor, Want::Any))
            }
        )*
    };
}

macro_rules! forward_int {
    ($($method:ident: $ty:ty),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
                let want = Want::Int { min: <$ty>::MIN as i128, max: <$ty>::MAX as i128 };
                self.0.$method(StrictVisitor::new(visitor, want))
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strict<D> {
    type Error = D::Error;

    forward_any!(
        deserialize_any,
        deserialize_bool,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit,
        deserialize_seq,
        deserialize_map,
        deserialize_identifier,
        deserialize_ignored_any,
    );

    forward_int!(
        deserialize_i8: i8,
        deserialize_i16: i16,
        deserialize_i32: i32,
        deserialize_i64: i64,
        deserialize_u8: u8,
        deserialize_u16: u16,
        deserialize_u32: u32,
        deserialize_u64: u64,
    );

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        let want = Want::Int {
            min: i128::MIN,
            max: i128::MAX,
        };
        self.0.deserialize_i128(StrictVisitor::new(visitor, want))
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        let want = Want::Int {
            min: 0,
            max: i128::MAX,
        };
        self.0.deserialize_u128(StrictVisitor::new(visitor, want))
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0
            .deserialize_f32(StrictVisitor::new(visitor, Want::Number))
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0
            .deserialize_f64(StrictVisitor::new(visitor, Want::Number))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0
            .deserialize_unit_struct(name, StrictVisitor::new(visitor, Want::Any))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0
            .deserialize_newtype_struct(name, StrictVisitor::new(visitor, Want::Any))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0
            .deserialize_tuple(len, StrictVisitor::new(visitor, Want::Any))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0
            .deserialize_tuple_struct(name, len, StrictVisitor::new(visitor, Want::Any))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0
            .deserialize_struct(name, fields, StrictVisitor::new(visitor, Want::Object))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0
            .deserialize_enum(name, variants, StrictVisitor::new(visitor, Want::Enum))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

impl<'de, V: Visitor<'de>> Visitor<'de> for StrictVisitor<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.want {
            Want::Any => self.inner.expecting(f),
            Want::Object => f.write_str("a JSON object"),
            Want::Enum => f.write_str("one of the documented values"),
            Want::Int { min, max } if min == i128::MIN || max == i128::MAX => {
                f.write_str("an integer")
            }
            Want::Int { min, max } => write!(f, "an integer from {min} to {max}"),
            Want::Number => f.write_str("a number"),
        }
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.inner.visit_bool(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        if let Want::Int { min, max } = self.want
            && !(min..=max).contains(&i128::from(v))
        {
            return Err(E::invalid_value(Unexpected::Signed(v), &self));
        }
        self.inner.visit_i64(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        if let Want::Int { min, max } = self.want
            && !(min..=max).contains(&i128::from(v))
        {
            return Err(E::invalid_value(Unexpected::Unsigned(v), &self));
        }
        self.inner.visit_u64(v)
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Self::Value, E> {
        self.inner.visit_i128(v)
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Self::Value, E> {
        self.inner.visit_u128(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // JSON Schema: a number with a zero fractional part is an integer (`563.0`).
        if let Want::Int { min, max } = self.want {
            if v.is_finite() && v.fract() == 0.0 && v >= min as f64 && v <= max as f64 {
                // Exact: every integer in the f64's range up to 2^63 converts without loss
                // (a larger magnitude has no fraction to lose and is checked by the bounds).
                return if v < 0.0 {
                    self.inner.visit_i64(v as i64)
                } else {
                    self.inner.visit_u64(v as u64)
                };
            }
            return Err(E::invalid_value(Unexpected::Float(v), &self));
        }
        self.inner.visit_f64(v)
    }

    fn visit_char<E: de::Error>(self, v: char) -> Result<Self::Value, E> {
        self.inner.visit_char(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.inner.visit_str(v)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        self.inner.visit_borrowed_str(v)
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        self.inner.visit_string(v)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        self.inner.visit_bytes(v)
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
        self.inner.visit_borrowed_bytes(v)
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
        self.inner.visit_byte_buf(v)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_none()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_some(Strict(d))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_newtype_struct(Strict(d))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        if let Want::Object = self.want {
            return Err(de::Error::invalid_type(Unexpected::Seq, &self));
        }
        self.inner.visit_seq(StrictSeq(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_map(StrictMap(map))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_enum(StrictEnum(data))
    }
}

struct StrictSeq<A>(A);

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for StrictSeq<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(StrictSeed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

struct StrictMap<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for StrictMap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(StrictSeed(seed))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(StrictSeed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

struct StrictEnum<A>(A);

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for StrictEnum<A> {
    type Error = A::Error;
    type Variant = StrictVariant<A::Variant>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), A::Error> {
        let (value, variant) = self.0.variant_seed(StrictSeed(seed))?;
        Ok((value, StrictVariant(variant)))
    }
}

struct StrictVariant<A>(A);

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for StrictVariant<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.newtype_variant_seed(StrictSeed(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0
            .tuple_variant(len, StrictVisitor::new(visitor, Want::Any))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.0
            .struct_variant(fields, StrictVisitor::new(visitor, Want::Object))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::Strict;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        n: u8,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        name: String,
        count: Option<u32>,
        #[serde(default)]
        items: Vec<Inner>,
        ratio: Option<f64>,
    }

    fn read<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, String> {
        let de = &mut serde_json::Deserializer::from_str(json);
        T::deserialize(Strict(de)).map_err(|e| e.to_string())
    }

    /// (body, what is read or the refusal's message start).
    #[test]
    fn reads_json_as_json_schema_does() {
        let cases: &[(&str, Result<Outer, &str>)] = &[
            (
                r#"{"name":"a","count":563.0,"items":[{"n":255.0}],"ratio":1.5}"#,
                Ok(Outer {
                    name: "a".into(),
                    count: Some(563),
                    items: vec![Inner { n: 255 }],
                    ratio: Some(1.5),
                }),
            ),
            (
                r#"["a", 1, [], null]"#,
                Err("invalid type: sequence, expected a JSON object"),
            ),
            (
                r#"{"name":"a","count":null,"items":[[7]],"ratio":null}"#,
                Err("invalid type: sequence, expected a JSON object"),
            ),
            (
                r#"{"name":"a","count":563.5,"ratio":null}"#,
                Err(
                    "invalid value: floating point `563.5`, expected an integer from 0 to 4294967295",
                ),
            ),
            (
                r#"{"name":"a","count":-1,"ratio":null}"#,
                Err("invalid value: integer `-1`, expected an integer from 0 to 4294967295"),
            ),
            (
                r#"{"name":"a","count":null,"items":[{"n":256}],"ratio":null}"#,
                Err("invalid value: integer `256`, expected an integer from 0 to 255"),
            ),
            (
                r#"{"name":"a","count":"5","ratio":null}"#,
                Err("invalid type: string \"5\", expected an integer from 0 to 4294967295"),
            ),
            (
                r#""text""#,
                Err("invalid type: string \"text\", expected a JSON object"),
            ),
        ];
        for (body, want) in cases {
            let got = read::<Outer>(body);
            match (want, &got) {
                (Ok(w), Ok(g)) => assert_eq!(w, g, "{body}"),
                (Err(w), Err(g)) => assert!(g.starts_with(w), "{body}: {g}"),
                _ => panic!("{body}: expected {want:?}, got {got:?}"),
            }
        }
    }
}
