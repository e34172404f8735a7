//! Text encodings of PSKC values, read liberally (spec digest §4a): base64 with whitespace,
//! the three integer encodings, case-insensitive booleans, several date forms.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, UtcOffset};
use zeroize::Zeroizing;

/// Decodes base64, ignoring ASCII whitespace anywhere and tolerating missing padding.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    if !text.bytes().any(|b| b.is_ascii_whitespace()) {
        return STANDARD_PAD_INDIFFERENT.decode(text).ok();
    }
    let compact: Zeroizing<Vec<u8>> =
        Zeroizing::new(text.bytes().filter(|b| !b.is_ascii_whitespace()).collect());
    STANDARD_PAD_INDIFFERENT.decode(&*compact).ok()
}

/// [`base64_decode`] into `out` (cleared first, its allocation kept); `false` when `text`
/// is not base64.
pub fn base64_decode_into(text: &str, out: &mut Vec<u8>) -> bool {
    out.clear();
    if !text.bytes().any(|b| b.is_ascii_whitespace()) {
        return STANDARD_PAD_INDIFFERENT.decode_vec(text, out).is_ok();
    }
    let compact: Zeroizing<Vec<u8>> =
        Zeroizing::new(text.bytes().filter(|b| !b.is_ascii_whitespace()).collect());
    STANDARD_PAD_INDIFFERENT.decode_vec(&*compact, out).is_ok()
}

/// Encodes base64 with padding, on one line.
pub fn base64_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// An integer from bytes: ASCII decimal digits, else big-endian binary (at most 8 bytes).
pub fn int_from_bytes(bytes: &[u8]) -> Option<u64> {
    if !bytes.is_empty() && bytes.iter().all(u8::is_ascii_digit) {
        return std::str::from_utf8(bytes).ok()?.parse().ok();
    }
    if bytes.is_empty() || bytes.len() > 8 {
        return None;
    }
    Some(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// A `<PlainValue>` integer: decimal text, else base64 of ASCII digits or of big-endian bytes.
pub fn plain_int(text: &str) -> Option<u64> {
    let text = text.trim();
    if let Ok(value) = text.parse::<u64>() {
        return Some(value);
    }
    int_from_bytes(&base64_decode(text)?)
}

/// A signed `<PlainValue>` (TimeDrift): decimal text with sign, else like [`plain_int`]
/// with the big-endian form read as two's complement of its width.
pub fn plain_signed(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(value) = text.parse::<i64>() {
        return Some(value);
    }
    signed_from_bytes(&base64_decode(text)?)
}

/// Signed integer from decrypted or decoded bytes (ASCII with optional `-`, or big-endian).
pub fn signed_from_bytes(bytes: &[u8]) -> Option<i64> {
    if let Some(value) = std::str::from_utf8(bytes)
        .ok()
        .and_then(|t| t.parse::<i64>().ok())
    {
        return Some(value);
    }
    if bytes.is_empty() || bytes.len() > 8 {
        return None;
    }
    let unsigned = bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let shift = 64 - 8 * bytes.len() as u32;
    Some(((unsigned << shift) as i64) >> shift)
}

/// Attribute integer (decimal only, as xs:int requires).
pub fn attr_int(text: &str) -> Option<u32> {
    text.trim().parse().ok()
}

/// xs:boolean, case-insensitive (`true`/`false`/`1`/`0`).
pub fn boolean(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// xs:dateTime and the looser forms seen in files; a missing offset means UTC.
pub fn date_time(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    if let Ok(value) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(value);
    }
    let naive = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    if let Ok(value) = PrimitiveDateTime::parse(text, naive) {
        return Some(value.assume_offset(UtcOffset::UTC));
    }
    let fractional =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]");
    if let Ok(value) = PrimitiveDateTime::parse(text, fractional) {
        return Some(value.assume_offset(UtcOffset::UTC));
    }
    let date = format_description!("[year]-[month]-[day]");
    let us_date = format_description!("[month]/[day]/[year]");
    let day = Date::parse(text, date)
        .or_else(|_| Date::parse(text, us_date))
        .ok()?;
    Some(day.midnight().assume_offset(UtcOffset::UTC))
}

/// xs:dateTime as written by this crate (RFC 3339, `Z` for UTC).
pub fn format_date_time(value: OffsetDateTime) -> String {
    // Formatting only fails for years outside 0..=9999, which `date_time` never yields;
    // fall back to the debug form rather than panic for values built by callers.
    value.format(&Rfc3339).unwrap_or_else(|_| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_in_the_five_encodings_of_python_pskc_misc_integers() {
        assert_eq!(plain_int("831791"), Some(831791));
        assert_eq!(plain_int("NzA5Nzkx"), Some(709791));
        assert_eq!(plain_int("AAYxSg=="), Some(405834));
        assert_eq!(plain_int("TWELVE"), None);
        assert_eq!(int_from_bytes(b"298507"), Some(298507));
        assert_eq!(int_from_bytes(&[0x0e, 0xab, 0x70]), Some(961392));
    }

    #[test]
    fn signed_drift() {
        assert_eq!(plain_signed("-4"), Some(-4));
        assert_eq!(signed_from_bytes(&[0xff, 0xfc]), Some(-4));
        assert_eq!(signed_from_bytes(b"-12"), Some(-12));
    }

    #[test]
    fn base64_with_whitespace() {
        assert_eq!(base64_decode(" MTIz\n NA==\n").unwrap(), b"1234");
        assert_eq!(base64_decode("MTIzNA").unwrap(), b"1234");
        assert!(base64_decode("not base64!").is_none());
    }

    #[test]
    fn booleans_and_dates() {
        assert_eq!(boolean("TRUE"), Some(true));
        assert_eq!(boolean("0"), Some(false));
        assert_eq!(boolean("not really"), None);
        let day = date_time("2006-05-01T00:00:00Z").unwrap();
        assert_eq!(format_date_time(day), "2006-05-01T00:00:00Z");
        assert_eq!(date_time("2006-05-01T00:00:00"), Some(day));
        assert_eq!(date_time("05/01/2006"), Some(day));
        let offset = date_time("2012-09-19T10:00:00+02:00").unwrap();
        assert_eq!(format_date_time(offset), "2012-09-19T10:00:00+02:00");
    }
}
