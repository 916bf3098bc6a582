//! The fast path of decoding: a hand-written reader for the record every feed
//! sends almost always — one flat JSON object of strings, numbers, literals
//! and (for list fields) arrays of strings.
//!
//! It only ever accepts. Anything outside that shape, and any line that is not
//! valid JSON, gives `None`, and the line is read again by the serde_json path
//! ([`super::json`]), which owns every error message and the rare shapes
//! (nested values, lone surrogates, very long numbers). What it does
//! accept it reads exactly as that path would: the same slots, the same
//! numbers to the bit (the unit tests compare the two on many lines).
//! serde_json's visitor machinery was over half of replay's time; this reads
//! a line in one pass with no calls through a deserializer.

use std::borrow::Cow;

use arrayvec::ArrayVec;

use super::json::{List, Slot};
use crate::schema::{FeedSchema, MAX_FIELDS};

/// Reads `text` into `slots` if it is a record of the common shape; `None`
/// otherwise, with `slots` in any state (the caller resets them).
pub(super) fn scan<'de>(
    text: &'de str,
    schema: &FeedSchema,
    build: &[bool],
    slots: &mut ArrayVec<Slot<'de>, MAX_FIELDS>,
) -> Option<()> {
    let mut c = Cursor { text, at: 0 };
    c.skip_ws();
    c.eat(b'{')?;
    c.skip_ws();
    if c.peek() == Some(b'}') {
        c.at += 1;
        return c.at_end();
    }
    // Producers write fields in one order, usually the schema's: try the field
    // after the last one first.
    let mut hint = 0;
    loop {
        let key = c.key()?;
        c.skip_ws();
        c.eat(b':')?;
        c.skip_ws();
        let index = match schema.fields.get(hint) {
            Some(f) if same(f.name.as_bytes(), key.as_bytes()) => Some(hint),
            _ => schema.index_of(key),
        };
        // Fields the schema does not know are read and dropped, as the slow
        // path does; here only arrays of strings are taken for them.
        let list = index.map_or(List::Check, |i| List::of_field(schema, build, i));
        // One call site, so the value is inlined and comes back in registers:
        // returned through the stack it cost a store-forwarding stall a field.
        let value = c.value(list)?;
        if let Some(i) = index {
            hint = i + 1;
            // The slot is almost always still empty, and an empty one holds
            // nothing to free: the out-of-line drop is called only when the
            // field came twice.
            let old = std::mem::replace(&mut slots[i], value);
            if matches!(old, Slot::Missing) {
                std::mem::forget(old);
            } else {
                drop(old);
            }
        }
        c.skip_ws();
        match c.next()? {
            b',' => c.skip_ws(),
            b'}' => return c.at_end(),
            _ => return None,
        }
    }
}

/// Whether two keys are the same: a word at a time, inline (field names are
/// short, and a call to `memcmp` a field was 4 % of replay).
#[inline(always)]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let same_at = |at| word_at(a, at) == word_at(b, at);
    // Whole words, then one last word that may overlap the one before.
    (0..n - 8).step_by(8).all(same_at) && same_at(n - 8)
}

/// The eight bytes from `at`, little-endian, if there are eight.
#[inline(always)]
fn word_at(bytes: &[u8], at: usize) -> Option<u64> {
    let word: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(word))
}

struct Cursor<'de> {
    text: &'de str,
    at: usize,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// A mark on the high bit of each byte of `w` that ends a plain string run
/// (a quote, a backslash or a control character). Bits above the first true
/// mark may be false ones; the lowest is exact, and only it is used.
fn string_stops(w: u64) -> u64 {
    let quote = w ^ (ONES * u64::from(b'"'));
    let backslash = w ^ (ONES * u64::from(b'\\'));
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    zero_in(quote) | zero_in(backslash) | control
}

/// The index of the first byte whose high bit is set in `marks` (not zero).
fn first_marked(marks: u64) -> usize {
    (marks.trailing_zeros() / 8) as usize
}

impl<'de> Cursor<'de> {
    fn bytes(&self) -> &'de [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn eat(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// Only whitespace may follow the object.
    fn at_end(&mut self) -> Option<()> {
        self.skip_ws();
        (self.at == self.text.len()).then_some(())
    }

    /// A key: a string without escapes.
    #[inline(always)]
    fn key(&mut self) -> Option<&'de str> {
        self.eat(b'"')?;
        let start = self.at;
        let end = self.plain_run();
        self.at = end;
        self.eat(b'"')?;
        self.text.get(start..end)
    }

    /// The end of the run of plain string bytes from the cursor, eight bytes
    /// at a time.
    #[inline(always)]
    fn plain_run(&self) -> usize {
        let bytes = self.bytes();
        let mut i = self.at;
        while let Some(word) = word_at(bytes, i) {
            let stops = string_stops(word);
            if stops != 0 {
                return i + first_marked(stops);
            }
            i += 8;
        }
        // Fewer than eight left: padded with quotes, the line's end stops the
        // run at the latest, and the same test as above finds the first stop.
        let rest = bytes.get(i..).unwrap_or_default();
        let mut last = [b'"'; 8];
        last[..rest.len()].copy_from_slice(rest);
        i + first_marked(string_stops(u64::from_le_bytes(last)))
    }

    /// A string value, the cursor on its opening quote: borrowed when it has
    /// no escapes, unescaped into an owned string otherwise.
    #[inline(always)]
    fn string(&mut self) -> Option<Cow<'de, str>> {
        self.eat(b'"')?;
        let start = self.at;
        self.at = self.plain_run();
        if self.next()? == b'"' {
            return self.text.get(start..self.at - 1).map(Cow::Borrowed);
        }
        self.at -= 1;
        let mut owned = String::from(self.text.get(start..self.at)?);
        loop {
            match self.next()? {
                b'"' => return Some(Cow::Owned(owned)),
                b'\\' => owned.push(self.escape()?),
                _ => return None, // a control character: an error for the slow path to word
            }
            let run = self.at;
            self.at = self.plain_run();
            owned.push_str(self.text.get(run..self.at)?);
        }
    }

    /// One escape after its backslash. A lone surrogate is left to the slow
    /// path (serde_json refuses it).
    fn escape(&mut self) -> Option<char> {
        Some(match self.next()? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => match self.hex4()? {
                high @ 0xD800..0xDC00 => {
                    // The first half of a pair: the second must follow.
                    self.eat(b'\\')?;
                    self.eat(b'u')?;
                    let low = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return None;
                    }
                    char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))?
                }
                code => char::from_u32(code)?,
            },
            _ => return None,
        })
    }

    /// The four hex digits of a `\u` escape.
    fn hex4(&mut self) -> Option<u32> {
        let hex = self.text.get(self.at..self.at + 4)?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.at += 4;
        u32::from_str_radix(hex, 16).ok()
    }

    /// One value. Objects, and arrays that are not of strings, go to the slow path.
    #[inline(always)]
    fn value(&mut self, list: List) -> Option<Slot<'de>> {
        Some(match self.peek()? {
            b'"' => Slot::Str(self.string()?),
            b'-' | b'0'..=b'9' => self.number()?,
            b't' => self.literal("true", Slot::Bool(true))?,
            b'f' => self.literal("false", Slot::Bool(false))?,
            b'n' => self.literal("null", Slot::Null)?,
            b'[' if list != List::Skip => self.strings(list)?,
            _ => return None,
        })
    }

    fn literal(&mut self, word: &str, slot: Slot<'de>) -> Option<Slot<'de>> {
        let end = self.at + word.len();
        (self.text.get(self.at..end)? == word).then_some(())?;
        self.at = end;
        Some(slot)
    }

    /// An array of strings, the cursor on its `[`.
    fn strings(&mut self, list: List) -> Option<Slot<'de>> {
        self.eat(b'[')?;
        self.skip_ws();
        let mut items = Vec::new();
        let mut bytes = 0;
        if self.peek() == Some(b']') {
            self.at += 1;
        } else {
            loop {
                let item = self.string()?;
                match list {
                    List::Keep => items.push(item),
                    _ => bytes += item.len(),
                }
                self.skip_ws();
                match self.next()? {
                    b',' => self.skip_ws(),
                    b']' => break,
                    _ => return None,
                }
            }
        }
        Some(match list {
            List::Keep => Slot::List(items),
            _ => Slot::CheckedList(bytes),
        })
    }

    /// A number, in JSON's grammar. Integers are read here; a fraction or an
    /// exponent makes a float, read here where one rounding gives the exact
    /// result (as serde_json does), else by serde_json itself.
    fn number(&mut self) -> Option<Slot<'de>> {
        let start = self.at;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let int_start = self.at;
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        let int_end = self.at;
        let mut fraction = int_end..int_end;
        if self.peek() == Some(b'.') {
            self.at += 1;
            let from = self.at;
            self.digits();
            if self.at == from {
                return None;
            }
            fraction = from..self.at;
        }
        let mut exponent = false;
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            let from = self.at;
            self.digits();
            if self.at == from {
                return None;
            }
            exponent = true;
        }
        let bytes = self.bytes();
        // Nothing after the integer part: neither fraction nor exponent.
        if self.at == int_end {
            // Past 18 digits an integer may leave i64 (and serde_json reads
            // `-0` as a float): both are left to the slow path.
            if int_end - int_start > 18 {
                return None;
            }
            let value = decimal(&bytes[int_start..int_end]);
            return match (negative, value) {
                (true, 0) => None,
                (true, v) => Some(Slot::Int(-(v as i64))),
                (false, v) => Some(Slot::Int(v as i64)),
            };
        }
        let token = self.text.get(start..self.at)?;
        let places = fraction.len();
        if exponent || (int_end - int_start) + places > 15 {
            return serde_json::from_str::<f64>(token).ok().map(Slot::Float);
        }
        // Both the digits (below 2^53) and the power of ten are exact in an
        // f64, so one division is correctly rounded: the value serde_json
        // computes the same way.
        let significand = decimal(&bytes[int_start..int_end]) * 10u64.pow(places as u32)
            + decimal(&bytes[fraction]);
        let magnitude = significand as f64 / POWERS_OF_TEN[places];
        Some(Slot::Float(if negative { -magnitude } else { magnitude }))
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
    }
}

/// The value of a run of at most 19 ASCII digits.
fn decimal(digits: &[u8]) -> u64 {
    digits.iter().fold(0, |v, d| v * 10 + u64::from(d - b'0'))
}

/// 10^0 ..= 10^22, every one exact in an f64.
const POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];
