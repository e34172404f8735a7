//! The keyboard side of a YubiKey: an OTP is typed as USB boot-keyboard input reports
//! (`[modifiers, 0, key1..key6]`, a press then an all-zero release per character). The
//! emulator encodes, the driver decodes (US layout, as the YubiKey assumes).

/// Left-shift bit of the modifier byte.
const SHIFT: u8 = 0x02;
/// Usage ID of Enter.
const ENTER: u8 = 0x28;
/// Usage ID of Tab.
const TAB: u8 = 0x2b;
/// Longest line kept.
const MAX_LINE: usize = 64;

/// Usage ID of a character on the main block (digits, lowercase letters) or, with
/// `keypad`, of a digit on the numeric keypad.
fn usage_of(c: char, keypad: bool) -> Option<u8> {
    match c {
        '1'..='9' if keypad => Some(0x59 + (c as u8 - b'1')),
        '0' if keypad => Some(0x62),
        '1'..='9' => Some(0x1e + (c as u8 - b'1')),
        '0' => Some(0x27),
        'a'..='z' => Some(0x04 + (c as u8 - b'a')),
        '\n' => Some(ENTER),
        '\t' => Some(TAB),
        _ => None,
    }
}

/// Character of a usage ID (main block or keypad), shift giving uppercase letters.
fn char_of(usage: u8, modifiers: u8) -> Option<char> {
    let c = match usage {
        0x04..=0x1d => char::from(b'a' + (usage - 0x04)),
        0x1e..=0x26 => char::from(b'1' + (usage - 0x1e)),
        0x27 | 0x62 => '0',
        0x59..=0x61 => char::from(b'1' + (usage - 0x59)),
        ENTER | 0x58 => '\n',
        TAB => '\t',
        _ => return None,
    };
    Some(if modifiers & 0x22 != 0 {
        c.to_ascii_uppercase()
    } else {
        c
    })
}

/// Encodes text as press/release report pairs (emulator side). Characters without a key
/// are skipped.
pub fn encode(text: &str, keypad: bool) -> Vec<[u8; 8]> {
    let mut reports = Vec::with_capacity(text.len() * 2);
    for c in text.chars() {
        let lower = c.to_ascii_lowercase();
        if let Some(usage) = usage_of(lower, keypad && c.is_ascii_digit()) {
            let modifiers = if c.is_ascii_uppercase() { SHIFT } else { 0 };
            reports.push([modifiers, 0, usage, 0, 0, 0, 0, 0]);
            reports.push([0; 8]);
        }
    }
    reports
}

/// Accumulates typed characters from input reports until Enter.
#[derive(Debug, Default)]
pub struct LineDecoder {
    line: String,
    pressed: Vec<u8>,
}

impl LineDecoder {
    /// Feeds one report (8 bytes, or 9 with a leading report ID 0). Returns the finished
    /// line (without the Enter) when Enter is pressed.
    pub fn feed(&mut self, report: &[u8]) -> Option<String> {
        let report = if report.len() == 9 {
            &report[1..]
        } else {
            report
        };
        if report.len() < 3 {
            return None;
        }
        let modifiers = report[0];
        let keys: Vec<u8> = report[2..].iter().copied().filter(|&k| k > 3).collect();
        for &key in keys.iter().filter(|k| !self.pressed.contains(k)) {
            match char_of(key, modifiers) {
                Some('\n') => {
                    self.pressed = keys.clone();
                    return Some(std::mem::take(&mut self.line));
                }
                // An OTP line is at most 32 (token id) + 8 characters; anything longer is
                // not an OTP, so start over rather than grow without bound.
                Some(_) if self.line.len() >= MAX_LINE => self.line.clear(),
                Some(c) => self.line.push(c),
                None => {}
            }
        }
        self.pressed = keys;
        None
    }

    /// Characters received so far without an Enter.
    pub fn partial(&self) -> &str {
        &self.line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode_is_identity() {
        for keypad in [false, true] {
            let mut decoder = LineDecoder::default();
            let mut got = None;
            for report in encode("cccc0123456789\n", keypad) {
                if let Some(line) = decoder.feed(&report) {
                    got = Some(line);
                }
            }
            assert_eq!(got.as_deref(), Some("cccc0123456789"));
        }
    }

    #[test]
    fn endless_typing_without_enter_stays_bounded() {
        let mut decoder = LineDecoder::default();
        for report in encode(&"7".repeat(1000), false) {
            assert!(decoder.feed(&report).is_none());
        }
        assert!(decoder.partial().len() <= MAX_LINE);
    }

    #[test]
    fn digits_use_usb_usage_ids() {
        assert_eq!(encode("1", false)[0][2], 0x1e);
        assert_eq!(encode("0", false)[0][2], 0x27);
        assert_eq!(encode("0", true)[0][2], 0x62);
        assert_eq!(encode("\n", false)[0][2], 0x28);
    }
}
