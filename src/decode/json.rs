//! The general path: any JSON line read by serde_json into the schema's slots
//! in a single pass — known fields into their slot (strings borrowed from the
//! line when they need no unescaping), unknown ones skipped. It reads what the
//! fast path ([`super::scan`]) leaves, and words every parse error.

use std::borrow::Cow;
use std::fmt;

use arrayvec::ArrayVec;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::schema::{FeedSchema, FieldType, MAX_FIELDS};

/// One field's value as read from JSON, before validation.
#[derive(Debug, Default)]
pub(super) enum Slot<'de> {
    #[default]
    Missing,
    Null,
    Str(Cow<'de, str>),
    Int(i64),
    /// Integers beyond i64.
    BigInt,
    Float(f64),
    Bool(bool),
    List(Vec<Cow<'de, str>>),
    /// A list of strings checked but not kept (its column is not built): the
    /// bytes of its items.
    CheckedList(usize),
    /// A list with a non-string element.
    BadList,
    Array,
    Object,
    /// A validated time.
    Time(i64),
}

impl Slot<'_> {
    pub(super) fn json_kind(&self) -> &'static str {
        match self {
            Slot::Missing => "nothing",
            Slot::Null => "null",
            Slot::Str(_) | Slot::Time(_) => "a string",
            Slot::Int(_) | Slot::BigInt | Slot::Float(_) => "a number",
            Slot::Bool(_) => "a boolean",
            Slot::List(_) | Slot::CheckedList(_) | Slot::BadList | Slot::Array => "an array",
            Slot::Object => "an object",
        }
    }
}

#[derive(Debug)]
pub(super) enum TopLevel {
    Object,
    NotObject(&'static str),
}

/// Reads a whole line (any JSON) into the slots: what it is at top level, or
/// serde_json's error.
pub(super) fn read<'de>(
    text: &'de str,
    schema: &FeedSchema,
    build: &[bool],
    slots: &mut ArrayVec<Slot<'de>, MAX_FIELDS>,
) -> Result<TopLevel, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let top = RowSeed {
        schema,
        build,
        slots,
    }
    .deserialize(&mut de)?;
    de.end().map(|()| top)
}

struct RowSeed<'a, 'de> {
    schema: &'a FeedSchema,
    /// The fields whose values are kept for their column.
    build: &'a [bool],
    slots: &'a mut ArrayVec<Slot<'de>, MAX_FIELDS>,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_, 'de> {
    type Value = TopLevel;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<TopLevel, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_, 'de> {
    type Value = TopLevel;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel, A::Error> {
        // Producers write fields in one order, usually the schema's: try the
        // field after the last one first.
        let mut hint = 0;
        while let Some(index) = map.next_key_seed(KeySeed(self.schema, hint))? {
            match index {
                Some(i) => {
                    hint = i + 1;
                    let want_list = List::of_field(self.schema, self.build, i);
                    self.slots[i] = map.next_value_seed(ValueSeed { want_list })?;
                }
                // Fields the schema does not know are ignored, so producers can add fields first.
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(TopLevel::Object)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TopLevel, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(TopLevel::NotObject("an array"))
    }
    fn visit_str<E>(self, _: &str) -> Result<TopLevel, E> {
        Ok(TopLevel::NotObject("a string"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<TopLevel, E> {
        Ok(TopLevel::NotObject("a number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<TopLevel, E> {
        Ok(TopLevel::NotObject("a number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<TopLevel, E> {
        Ok(TopLevel::NotObject("a number"))
    }
    fn visit_bool<E>(self, _: bool) -> Result<TopLevel, E> {
        Ok(TopLevel::NotObject("a boolean"))
    }
    fn visit_unit<E>(self) -> Result<TopLevel, E> {
        Ok(TopLevel::NotObject("null"))
    }
}

/// Resolves an object key to the schema field it names, without allocating;
/// the field at the hint is tried first.
struct KeySeed<'a>(&'a FeedSchema, usize);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E>(self, key: &str) -> Result<Option<usize>, E> {
        match self.0.fields.get(self.1) {
            Some(f) if f.name == key => Ok(Some(self.1)),
            _ => Ok(self.0.index_of(key)),
        }
    }
}

/// What to do with an array value (both paths).
#[derive(Clone, Copy, PartialEq)]
pub(super) enum List {
    /// Not a list field: an array is a type error (read past here; the
    /// fast path leaves it to this one).
    Skip,
    /// A list field whose column is built: keep the items.
    Keep,
    /// A list field whose column is not built: check the items, keep their size.
    Check,
}

impl List {
    /// What field `i` of the schema does with an array.
    pub(super) fn of_field(schema: &FeedSchema, build: &[bool], i: usize) -> List {
        match schema.fields[i].ty {
            FieldType::StringList if build[i] => List::Keep,
            FieldType::StringList => List::Check,
            _ => List::Skip,
        }
    }
}

struct ValueSeed {
    want_list: List,
}

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Slot<'de>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Slot<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Slot<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Slot<'de>, E> {
        Ok(Slot::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Slot<'de>, E> {
        Ok(Slot::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Slot<'de>, E> {
        Ok(Slot::Str(Cow::Owned(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Slot<'de>, E> {
        Ok(Slot::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Slot<'de>, E> {
        Ok(i64::try_from(v).map_or(Slot::BigInt, Slot::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Slot<'de>, E> {
        Ok(Slot::Float(v))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Slot<'de>, E> {
        Ok(Slot::Bool(v))
    }
    fn visit_unit<E>(self) -> Result<Slot<'de>, E> {
        Ok(Slot::Null)
    }
    fn visit_none<E>(self) -> Result<Slot<'de>, E> {
        Ok(Slot::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Slot<'de>, A::Error> {
        if self.want_list == List::Skip {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(Slot::Array);
        }
        let mut items = Vec::new();
        let mut bytes = 0;
        let mut bad = false;
        let item_seed = || ValueSeed {
            want_list: List::Skip,
        };
        while let Some(item) = seq.next_element_seed(item_seed())? {
            match item {
                Slot::Str(s) if self.want_list == List::Keep => items.push(s),
                Slot::Str(s) => bytes += s.len(),
                _ => bad = true,
            }
        }
        Ok(match (bad, self.want_list) {
            (true, _) => Slot::BadList,
            (false, List::Keep) => Slot::List(items),
            (false, _) => Slot::CheckedList(bytes),
        })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Slot<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Slot::Object)
    }
}
