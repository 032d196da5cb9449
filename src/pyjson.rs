//! Python-compatible JSON (spec/LAYOUT.md §2): the exact bytes `json.dumps` writes, because digests
//! are taken over them, plus the Python `str()` and truthiness rules that `.metadata` values go
//! through (spec/LAYOUT.md §4). Pure functions over `serde_json::Value`; no I/O.

use serde_json::{Number, Value};

/// json.dumps(v): keys in the map's own order.
pub fn to_string(v: &serde_json::Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v, Style::Json);
    out
}

/// json.dumps(v, sort_keys=True): keys sorted by code point, recursively.
pub fn to_string_sorted(v: &serde_json::Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v, Style::JsonSorted);
    out
}

/// json.dumps(map, sort_keys=True) for an object, without wrapping it in a `Value` first.
pub fn object_to_string_sorted(map: &serde_json::Map<String, Value>) -> String {
    let mut out = String::new();
    write_object(&mut out, map, Style::JsonSorted);
    out
}

/// json.dumps(v, indent=2), as `dlrepo-cli -j` prints it: one item per line, `,` with no
/// trailing space, `": "` after keys, `[]` and `{}` for empty containers.
pub fn to_string_indented(v: &serde_json::Value) -> String {
    let mut out = String::new();
    write_indented(&mut out, v, 1);
    out
}

fn write_indented(out: &mut String, v: &Value, depth: usize) {
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    match v {
        Value::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth);
                write_indented(out, item, depth + 1);
            }
            newline(out, depth - 1);
            out.push(']');
        }
        Value::Object(map) if !map.is_empty() => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth);
                write_json_str(out, key);
                out.push_str(": ");
                write_indented(out, item, depth + 1);
            }
            newline(out, depth - 1);
            out.push('}');
        }
        other => write_value(out, other, Style::Json),
    }
}

/// Python repr() of a float: shortest round-trip digits, exponent form when exp < -4 or >= 16
/// ("1e+16", "1e-05", "1.5", "1.0", "NaN"... note json.dumps writes NaN/Infinity/-Infinity).
///
/// Non-finite values are spelled the json.dumps way (`NaN`, `Infinity`, `-Infinity`), not the
/// repr way (`nan`, `inf`): only the JSON writer could meet them, and a `serde_json::Value`
/// cannot hold them anyway.
// One function on purpose: it follows CPython's `float_repr_style` case by case, and the
// cases read best side by side with it.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    // LowerExp prints the shortest digits that round-trip, as repr does, but when two such
    // strings are equally near (x = 1992403674027036.25: "…36.2", "…36.3") it rounds up
    // where CPython's dtoa picks the even digit. Fixed-precision LowerExp rounds ties to even,
    // so redo it at the shortest length; keep that unless it fails to round-trip (the nearest
    // n-digit decimal can fall outside the narrower interval just below a power of two).
    let shortest = format!("{f:e}");
    let digit_count = shortest
        .bytes()
        .take_while(|b| *b != b'e')
        .filter(u8::is_ascii_digit)
        .count();
    let nearest = format!("{:.*e}", digit_count.saturating_sub(1), f);
    let sci = if nearest.parse::<f64>() == Ok(f) {
        nearest
    } else {
        shortest
    };
    // Only the layout is left to fix: "1.5e16" vs "1.5e+16", "1e-5" vs "1e-05", "1e2" vs "100.0".
    let (mantissa, exp) = sci
        .split_once('e')
        .expect("LowerExp always writes an exponent");
    let exp: i32 = exp.parse().expect("LowerExp writes a decimal exponent");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();

    let mut out = String::from(sign);
    if !(-4..16).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push_str(if exp < 0 { "e-" } else { "e+" });
        // Python pads the exponent to two digits: 1e-05, 1e+16, 1e+100.
        let magnitude = exp.unsigned_abs();
        if magnitude < 10 {
            out.push('0');
        }
        out.push_str(&magnitude.to_string());
        return out;
    }
    // Digits d1 d2 ... stand for d1.d2... * 10^exp, so the point goes after exp + 1 digits.
    let point = exp + 1;
    if point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', point.unsigned_abs() as usize));
        out.push_str(&digits);
    } else {
        let point = point.unsigned_abs() as usize;
        if point >= digits.len() {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', point - digits.len()));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..point]);
            out.push('.');
            out.push_str(&digits[point..]);
        }
    }
    out
}

/// Python str(value) of a JSON value as json.loads would give it (str, int, float, True/False/None,
/// list and dict as Python repr with single-quoted strings following Python's repr quoting rules).
/// The caller lower-cases the result (LAYOUT.md §4: `[true, null]` -> "[True, None]" -> "[true, none]").
///
/// String reprs approximate `str.isprintable` (see `is_printable`): unassigned code points
/// other than the noncharacters are kept as is where Python would escape them.
pub fn python_str(v: &serde_json::Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => {
            let mut out = String::new();
            write_value(&mut out, other, Style::Repr);
            out
        }
    }
}

/// Python truthiness of the json.loads value: false, 0, 0.0, -0.0, "", [], {}, null are falsy.
pub fn is_truthy(v: &serde_json::Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                u != 0
            } else if let Some(i) = n.as_i64() {
                i != 0
            } else {
                // as_f64 only fails for numbers too large for a finite f64 (arbitrary_precision),
                // which are certainly not zero. NaN is truthy in Python, and NaN != 0.0 here too.
                n.as_f64().is_none_or(|f| f != 0.0)
            }
        }
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

/// The three writers share containers and separators and differ in scalars, strings and key order.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Json,
    JsonSorted,
    Repr,
}

fn write_value(out: &mut String, v: &Value, style: Style) {
    match v {
        Value::Null => out.push_str(if style == Style::Repr { "None" } else { "null" }),
        Value::Bool(b) => out.push_str(match (style == Style::Repr, *b) {
            (true, true) => "True",
            (true, false) => "False",
            (false, true) => "true",
            (false, false) => "false",
        }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) if style == Style::Repr => write_repr_str(out, s),
        Value::String(s) => write_json_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item, style);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map, style),
    }
}

fn write_object(out: &mut String, map: &serde_json::Map<String, Value>, style: Style) {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    if style == Style::JsonSorted {
        // UTF-8 byte order is code point order, which is how Python compares str.
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    }
    out.push('{');
    for (i, (key, item)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        if style == Style::Repr {
            write_repr_str(out, key);
        } else {
            write_json_str(out, key);
        }
        out.push_str(": ");
        write_value(out, item, style);
    }
    out.push('}');
}

fn write_number(out: &mut String, n: &Number) {
    // is_f64 is false for integers of any size, also under serde_json's arbitrary_precision
    // (should another crate turn it on), where Display then gives the integer's own digits.
    match n.as_f64() {
        Some(f) if n.is_f64() => out.push_str(&float_repr(f)),
        _ => out.push_str(&n.to_string()),
    }
}

fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    // Most strings (paths, digests) need no escape: copy the longest plain run at once.
    let plain = s
        .bytes()
        .position(|b| !(b' '..=b'~').contains(&b) || b == b'"' || b == b'\\')
        .unwrap_or(s.len());
    out.push_str(&s[..plain]);
    for c in s[plain..].chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                // DEL lands here too, although spec/LAYOUT.md §2 says it is kept: CPython's
                // ensure_ascii escapes all but ' '..='~' (3.11, C and pure-Python encoders).
                // Code units are UTF-16, so astral chars become surrogate pairs.
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str("\\u");
                    push_hex(out, u32::from(*unit), 4);
                }
            }
        }
    }
    out.push('"');
}

/// Python's `repr(str)`: single quotes unless only they occur in the string.
fn write_repr_str(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            c if c.is_ascii() || !is_printable(c) => {
                let cp = u32::from(c);
                if cp <= 0xff {
                    out.push_str("\\x");
                    push_hex(out, cp, 2);
                } else if cp <= 0xffff {
                    out.push_str("\\u");
                    push_hex(out, cp, 4);
                } else {
                    out.push_str("\\U");
                    push_hex(out, cp, 8);
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Non-ASCII code points that `str.isprintable()` rejects (Python 3.11, Unicode 14.0), other than
/// the unassigned ones: categories Cc, Cf, Co, Zs, Zl and Zp. Surrogates cannot occur in a `str`.
const NOT_PRINTABLE: &[(u32, u32)] = &[
    (0x80, 0xa0),
    (0xad, 0xad),
    (0x600, 0x605),
    (0x61c, 0x61c),
    (0x6dd, 0x6dd),
    (0x70f, 0x70f),
    (0x890, 0x891),
    (0x8e2, 0x8e2),
    (0x1680, 0x1680),
    (0x180e, 0x180e),
    (0x2000, 0x200f),
    (0x2028, 0x202f),
    (0x205f, 0x2064),
    (0x2066, 0x206f),
    (0x3000, 0x3000),
    (0xe000, 0xf8ff),
    (0xfeff, 0xfeff),
    (0xfff9, 0xfffb),
    (0x110bd, 0x110bd),
    (0x110cd, 0x110cd),
    (0x13430, 0x13438),
    (0x1bca0, 0x1bca3),
    (0x1d173, 0x1d17a),
    (0xe0001, 0xe0001),
    (0xe0020, 0xe007f),
    (0xf0000, 0xffffd),
    (0x100000, 0x10fffd),
];

/// Approximates `str.isprintable()` for non-ASCII chars. Python also escapes every unassigned
/// code point (category Cn); telling those apart needs the full Unicode tables, so only the
/// noncharacters, which are unassigned for good, are caught here.
fn is_printable(c: char) -> bool {
    let cp = u32::from(c);
    let noncharacter = cp & 0xfffe == 0xfffe || (0xfdd0..=0xfdef).contains(&cp);
    !noncharacter
        && !NOT_PRINTABLE
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&cp))
}

fn push_hex(out: &mut String, value: u32, width: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..width).rev() {
        let nibble = (value >> (shift * 4)) & 0xf;
        out.push(char::from(HEX[nibble as usize]));
    }
}

#[cfg(test)]
mod tests;
