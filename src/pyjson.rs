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

/// Python repr() of a float: shortest round-trip digits, exponent form when exp < -4 or >= 16
/// ("1e+16", "1e-05", "1.5", "1.0", "NaN"... note json.dumps writes NaN/Infinity/-Infinity).
///
/// Non-finite values are spelled the json.dumps way (`NaN`, `Infinity`, `-Infinity`), not the
/// repr way (`nan`, `inf`): only the JSON writer could meet them, and a `serde_json::Value`
/// cannot hold them anyway.
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
    for c in s.chars() {
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
mod tests {
    use super::*;
    use serde_json::json;

    // Golden bytes from CPython 3.11: json.dumps(json.loads(input)) (sort_keys=True for
    // DUMPS_SORTED), str(json.loads(input)) and repr(float), generated by a throw-away script.
    const DUMPS: &[(&str, &str)] = &[
        ("{}", "{}"),
        ("[]", "[]"),
        ("null", "null"),
        ("true", "true"),
        ("false", "false"),
        ("0", "0"),
        ("-1", "-1"),
        (r#""""#, r#""""#),
        (
            r#"{"b": [1, 2.5, {"c": null}], "a": true, "z": "\u00e9cole", "e": {}, "l": [], "n": [[[]], {"x": {}}]}"#,
            r#"{"b": [1, 2.5, {"c": null}], "a": true, "z": "\u00e9cole", "e": {}, "l": [], "n": [[[]], {"x": {}}]}"#,
        ),
        (
            r#"{"a":[1,2],"z":"\u00e9cole"}"#,
            r#"{"a": [1, 2], "z": "\u00e9cole"}"#,
        ),
        (
            r#""h\u00e9llo w\u00f6rld \ud83d\ude00 \ud834\udd1e \u4e2d\u6587""#,
            r#""h\u00e9llo w\u00f6rld \ud83d\ude00 \ud834\udd1e \u4e2d\u6587""#,
        ),
        (
            "\"héllo 😀 raw utf-8 中 ÿ Ā \u{ffff}\"",
            r#""h\u00e9llo \ud83d\ude00 raw utf-8 \u4e2d \u00ff \u0100 \uffff""#,
        ),
        (
            r#""\u0000\u0001\u001f\b\f\n\r\t\"\\/\u007f\u0080\u009f\u00a0\u2028\u2029\ufeff""#,
            r#""\u0000\u0001\u001f\b\f\n\r\t\"\\/\u007f\u0080\u009f\u00a0\u2028\u2029\ufeff""#,
        ),
        (
            r#""<script>&amp;\u0027</script>""#,
            r#""<script>&amp;'</script>""#,
        ),
        (
            "[0.1, 1e16, 1e-5, 123456789012345680000.0, 5e-324, -0.0, 1.5, 1.50, 1e20, 1e15, 0.0001, 0.00001, 1.7976931348623157e308, 2.5e-7, 100.0, 1e22, 9007199254740993.0, 1234.5678, -1e-7, 0.30000000000000004, 1E+2, 2.2250738585072014e-308, 4.9406564584124654e-324, 1.0e-4, 9999999999999998.0, 1e100, 0.0, 3.0e0, 1992403674027036.25, 84622577824737.625]",
            "[0.1, 1e+16, 1e-05, 1.2345678901234568e+20, 5e-324, -0.0, 1.5, 1.5, 1e+20, 1000000000000000.0, 0.0001, 1e-05, 1.7976931348623157e+308, 2.5e-07, 100.0, 1e+22, 9007199254740992.0, 1234.5678, -1e-07, 0.30000000000000004, 100.0, 2.2250738585072014e-308, 5e-324, 0.0001, 9999999999999998.0, 1e+100, 0.0, 3.0, 1992403674027036.2, 84622577824737.62]",
        ),
        (
            "[18446744073709551615, -9223372036854775808, 9223372036854775807, 4294967296, -1, 0]",
            "[18446744073709551615, -9223372036854775808, 9223372036854775807, 4294967296, -1, 0]",
        ),
        (
            r#"{"relpath/a b.txt": "sha256:ab", "x": {"nested": [1, "two", 3.0, null, false]}}"#,
            r#"{"relpath/a b.txt": "sha256:ab", "x": {"nested": [1, "two", 3.0, null, false]}}"#,
        ),
        (
            r#"{"max_daily_tags": 5, "max_released_tags": 0}"#,
            r#"{"max_daily_tags": 5, "max_released_tags": 0}"#,
        ),
        (
            r#"{"\u00e9": 1, "e": 2, "\ud83d\ude00": 3, "\uffff": 4, "": 5, "E": 6, "ee": 7, "a b": 8}"#,
            r#"{"\u00e9": 1, "e": 2, "\ud83d\ude00": 3, "\uffff": 4, "": 5, "E": 6, "ee": 7, "a b": 8}"#,
        ),
    ];
    const DUMPS_SORTED: &[(&str, &str)] = &[
        ("{}", "{}"),
        (
            r#"{"b": [1, 2.5, {"c": null}], "a": true, "z": "\u00e9cole", "e": {}, "l": [], "n": [[[]], {"x": {}}]}"#,
            r#"{"a": true, "b": [1, 2.5, {"c": null}], "e": {}, "l": [], "n": [[[]], {"x": {}}], "z": "\u00e9cole"}"#,
        ),
        (
            r#"{"a":[1,2],"z":"\u00e9cole"}"#,
            r#"{"a": [1, 2], "z": "\u00e9cole"}"#,
        ),
        (
            r#"{"relpath/a b.txt": "sha256:ab", "x": {"nested": [1, "two", 3.0, null, false]}}"#,
            r#"{"relpath/a b.txt": "sha256:ab", "x": {"nested": [1, "two", 3.0, null, false]}}"#,
        ),
        (
            r#"{"max_daily_tags": 5, "max_released_tags": 0}"#,
            r#"{"max_daily_tags": 5, "max_released_tags": 0}"#,
        ),
        (
            r#"{"\u00e9": 1, "e": 2, "\ud83d\ude00": 3, "\uffff": 4, "": 5, "E": 6, "ee": 7, "a b": 8}"#,
            r#"{"": 5, "E": 6, "a b": 8, "e": 2, "ee": 7, "\u00e9": 1, "\uffff": 4, "\ud83d\ude00": 3}"#,
        ),
        (
            r#"{"b": {"z": 1, "y": [{"d": 1, "c": 2}]}, "a": 0, "B": 1, "_": 2, "~": 3, "10": 4, "9": 5}"#,
            r#"{"10": 4, "9": 5, "B": 1, "_": 2, "a": 0, "b": {"y": [{"c": 2, "d": 1}], "z": 1}, "~": 3}"#,
        ),
        (
            r#"{"fmt": "sha256:00", ".metadata": "sha256:11", "Fmt": "sha256:22", "fmt2": "x"}"#,
            r#"{".metadata": "sha256:11", "Fmt": "sha256:22", "fmt": "sha256:00", "fmt2": "x"}"#,
        ),
    ];
    const PYTHON_STR: &[(&str, &str)] = &[
        (r#""Hello""#, "Hello"),
        (r#""Quote \" and '""#, r#"Quote " and '"#),
        ("1", "1"),
        ("-42", "-42"),
        ("18446744073709551615", "18446744073709551615"),
        ("1.50", "1.5"),
        ("1e20", "1e+20"),
        ("1e-5", "1e-05"),
        ("-0.0", "-0.0"),
        ("0.1", "0.1"),
        ("true", "True"),
        ("false", "False"),
        ("null", "None"),
        ("[true, null]", "[True, None]"),
        (r#"{"a": 1}"#, "{'a': 1}"),
        ("[]", "[]"),
        ("{}", "{}"),
        ("[[]]", "[[]]"),
        (
            r#"["it's", "say \"hi\"", "both ' and \"", "back\\slash", "\n\t\r", "\u0001\u001f\u007f", "\u0080\u009f", "\u00e9", "\u00a0", "\u00ad", "\ud83d\ude00", "\u2028", "\u3000", "\ue000", "\udb80\udc00", "\ufeff", "\ufffe", "\ufdd0", "\ud83f\udfff", "\udb40\udc01", "\u4e2d\u6587", "plain", ""]"#,
            r#"["it's", 'say "hi"', 'both \' and "', 'back\\slash', '\n\t\r', '\x01\x1f\x7f', '\x80\x9f', 'é', '\xa0', '\xad', '😀', '\u2028', '\u3000', '\ue000', '\U000f0000', '\ufeff', '\ufffe', '\ufdd0', '\U0001ffff', '\U000e0001', '中文', 'plain', '']"#,
        ),
        (
            r#"{"a": 1, "b": [true, false, null], "c": 1.5, "d": {"x": "y"}, "it's": "q", "e": 1e16, "f": -0.0, "g": 5e-324}"#,
            r#"{'a': 1, 'b': [True, False, None], 'c': 1.5, 'd': {'x': 'y'}, "it's": 'q', 'e': 1e+16, 'f': -0.0, 'g': 5e-324}"#,
        ),
        (r#"{"z": 1, "a": 2}"#, "{'z': 1, 'a': 2}"),
        (
            r#"[1, 2.0, "3", [4, [5, {"6": 7}]]]"#,
            "[1, 2.0, '3', [4, [5, {'6': 7}]]]",
        ),
    ];
    const FLOAT_REPR: &[(u64, &str)] = &[
        (0x0000000000000000, "0.0"),
        (0x8000000000000000, "-0.0"),
        (0x3fb999999999999a, "0.1"),
        (0x4341c37937e08000, "1e+16"),
        (0x3ee4f8b588e368f1, "1e-05"),
        (0x441ac53a7e04bcda, "1.2345678901234568e+20"),
        (0x0000000000000001, "5e-324"),
        (0x3ff8000000000000, "1.5"),
        (0x3ff0000000000000, "1.0"),
        (0x430c6bf526340000, "1000000000000000.0"),
        (0x4341c37937e07fff, "9999999999999998.0"),
        (0x3f1a36e2eb1c432d, "0.0001"),
        (0x3f202e4b6ce5dc68, "0.00012345"),
        (0x7fefffffffffffff, "1.7976931348623157e+308"),
        (0x0010000000000000, "2.2250738585072014e-308"),
        (0x4480f0cf064dd592, "1e+22"),
        (0x44b52d02c7e14af6, "1e+23"),
        (0x4059000000000000, "100.0"),
        (0xc05edd2f1a9fbe77, "-123.456"),
        (0x4340000000000000, "9007199254740992.0"),
        (0x43e0000000000000, "9.223372036854776e+18"),
        (0x3fd3333333333333, "0.3"),
        (0x3fe5555555555555, "0.6666666666666666"),
        (0x7e37e43c8800759c, "1e+300"),
        (0x01b01297d23ab683, "1.5e-300"),
        (0x3fd0000000000000, "0.25"),
        (0x4004000000000000, "2.5"),
        (0xc31c505284f55071, "-1992403674027036.2"),
        (0x42d33daeac3cf868, "84622577824737.62"),
        (0xc302cfb9f022ca32, "-661868385687878.2"),
        (0x0000000000000003, "1.5e-323"),
        (0x852010116895cea8, "-5.401003022090661e-284"),
        (0xb39cfd4b8abead78, "-4.510042255920358e-60"),
        (0x1ddd2106dcae6e9f, "7.903657710829675e-165"),
        (0x612b6cd52d39f5ab, "1.204914900942327e+160"),
        (0x4a21229039a40dfe, "1.2521424924683577e+49"),
        (0x39850d170772eaea, "1.297376215246833e-31"),
        (0x91959d9d1ddccf2d, "-5.839721154635891e-224"),
        (0x19a56746024115e4, "3.9352804381417554e-185"),
        (0xc64235eb281cdb93, "-2.885587835543778e+30"),
        (0xb05678128382b56e, "-7.761854076505776e-76"),
        (0x4d90437bfd4f6854, "4.281895278663238e+65"),
        (0xa24eb80db189e370, "-1.9680610690617685e-143"),
        (0x974b975360e09044, "-1.845534240928815e-196"),
        (0xc41edca667b13551, "-1.4232545793914151e+20"),
        (0xab8755c5b0f9aafc, "-5.3343330775003186e-99"),
        (0x5bb88633537c9792, "6.962950495840396e+133"),
        (0x56bcf77c12d465da, "6.802961523968868e+109"),
        (0x4860f7d0d76e0b6f, "4.619137242301733e+40"),
        (0x28b765989e022098, "1.520124668566636e-112"),
        (0x82d1d1701cacad0b, "-4.359192652968889e-295"),
        (0x96afb86411efe3fd, "-2.0720004906609002e-199"),
        (0x451ed237183982d2, "9.315121966583931e+24"),
        (0x50bfeb96f57bfe7b, "9.462054418187046e+80"),
        (0xf1702cde1b935513, "-2.633224961908564e+238"),
        (0xd2633d6da014c5d4, "-7.654780953160225e+88"),
        (0x4a2a3e41f8359314, "1.9177235584454918e+49"),
        (0x58347f9608f5fa74, "8.076774180195052e+116"),
        (0x1887325562c8f4c1, "1.626961870926257e-190"),
        (0x79e21d297a2f15f0, "1.2843941025484382e+279"),
        (0x30c9e507eab94480, "1.1449885685650308e-73"),
        (0x214a79023047a452, "2.5879162315843168e-148"),
        (0xbf4302b24223053b, "-0.0005801554109653781"),
        (0xc6ccac693f7a9c53, "-1.163134571044141e+33"),
        (0x0b1f331b0c98ae86, "4.1557857544059372e-255"),
        (0xf5e804cfac78b489, "-9.2324607504513e+259"),
        (0xae0b60fdd1139b9a, "-6.881558846219158e-87"),
        (0xb5b980156fb59ea3, "-6.815637434990483e-50"),
        (0xbd15349c09af7530, "-1.8834272762180412e-14"),
        (0xb1d8fbc7b6ad2d73, "-1.4479533081656997e-68"),
        (0xd82e3ed6bcaf0c20, "-5.958659824781337e+116"),
        (0x40bae103b147ef70, "6881.014423843342"),
        (0x41b9c86207cc0aa4, "432562695.79703736"),
        (0x42636d47c20c89a3, "667502383204.3011"),
        (0x3f80d46bccc3efed, "0.008217661081737016"),
        (0x417d8ec7e473854e, "30993534.2782033"),
        (0x4376132439cea4a2, "9.94159327556593e+16"),
        (0x40f1771fad1c5f9e, "71537.97976338721"),
        (0x436d123f82cb260c, "6.546270648960214e+16"),
        (0x3f8c8547c148cfa7, "0.01392608698470339"),
        (0x3e7d168166a4124c, "1.0836091638231164e-07"),
        (0x4296a1254bfe17d5, "6220342820741.958"),
        (0x422fc366a489fb39, "68211135044.99067"),
        (0x40e1438d48c73f92, "35356.4151340715"),
        (0x4122873501caa190, "607130.5034990776"),
        (0x409f4eb0ca343e71, "2003.6726463473426"),
        (0x400016a9f98ae1d7, "2.0110663886555176"),
        (0x3edb18f494482c66, "6.4605431515748175e-06"),
        (0x43abba82ecf7cab3, "9.990266694866927e+17"),
        (0x4274d600297176b8, "1431834892055.42"),
        (0x3f759149029cc857, "0.005265507885086582"),
        (0x42b7c86ec55a03e4, "26149619325443.89"),
        (0x3ea98e72f44b382f, "7.616413105428173e-07"),
        (0x40848d630f687ca2, "657.6733692324672"),
        (0x3f185a0892bcd83c, "9.289433790801797e-05"),
        (0x3e972460c19ad401, "3.448441830798265e-07"),
        (0x3fa92d226f048a4d, "0.049172473957032815"),
        (0x42d05b87c6d41891, "71941224091746.27"),
        (0x3eddcbf4a85a7982, "7.104087335867129e-06"),
        (0x404192631917ba90, "35.14364923151618"),
        (0x42022efe7c5603dd, "9762230154.751886"),
        (0x43daebf301bfa432, "7.759645013395425e+18"),
        (0x422dca20b403a54b, "63972596225.82284"),
        (0x3f1570bd54425ef8, "8.178859303808658e-05"),
        (0x40763b98ad440c3d, "355.72477461415457"),
        (0x407cd0bb29b58e38, "461.0456940738691"),
        (0x418c3f60e9c6efbb, "59239453.22213694"),
        (0x40308cb22f121a6d, "16.549593870086415"),
        (0x3f61e71a7b6217ad, "0.0021853940225495445"),
        (0x3f1221104c15a6e3, "6.915723772285167e-05"),
        (0x412c7a749bb535b1, "933178.3041168955"),
    ];

    fn parse(input: &str) -> Value {
        serde_json::from_str(input).unwrap()
    }

    #[test]
    fn dumps_matches_python() {
        for (input, want) in DUMPS {
            assert_eq!(to_string(&parse(input)), *want, "input: {input}");
        }
    }

    #[test]
    fn dumps_sorted_matches_python() {
        for (input, want) in DUMPS_SORTED {
            assert_eq!(to_string_sorted(&parse(input)), *want, "input: {input}");
        }
    }

    #[test]
    fn python_str_matches_python() {
        for (input, want) in PYTHON_STR {
            assert_eq!(python_str(&parse(input)), *want, "input: {input}");
        }
    }

    #[test]
    fn float_repr_matches_python() {
        for (bits, want) in FLOAT_REPR {
            let f = f64::from_bits(*bits);
            assert_eq!(float_repr(f), *want, "bits: {bits:#018x}");
            let negated = want
                .strip_prefix('-')
                .map_or_else(|| format!("-{want}"), str::to_owned);
            assert_eq!(float_repr(-f), negated, "bits: {bits:#018x} negated");
        }
    }

    #[test]
    fn float_repr_non_finite_uses_json_spelling() {
        assert_eq!(float_repr(f64::NAN), "NaN");
        assert_eq!(float_repr(f64::INFINITY), "Infinity");
        assert_eq!(float_repr(f64::NEG_INFINITY), "-Infinity");
    }

    #[test]
    fn built_values_keep_insertion_order() {
        let v = json!({"z": 1, "a": [1.0, "x"], "m": {"b": 2, "a": 1}});
        assert_eq!(
            to_string(&v),
            r#"{"z": 1, "a": [1.0, "x"], "m": {"b": 2, "a": 1}}"#
        );
        assert_eq!(
            to_string_sorted(&v),
            r#"{"a": [1.0, "x"], "m": {"a": 1, "b": 2}, "z": 1}"#
        );
    }

    #[test]
    fn truthiness_follows_python() {
        for falsy in [
            "false", "0", "0.0", "-0.0", "-0", "0e10", r#""""#, "[]", "{}", "null",
        ] {
            assert!(!is_truthy(&parse(falsy)), "{falsy} should be falsy");
        }
        for truthy in [
            "true",
            "1",
            "-1",
            "0.5",
            "5e-324",
            "18446744073709551615",
            r#"" ""#,
            r#""0""#,
            r#""false""#,
            "[0]",
            "[null]",
            r#"{"a": null}"#,
        ] {
            assert!(is_truthy(&parse(truthy)), "{truthy} should be truthy");
        }
    }
}
