//! A creator's blocked words: whole words and phrases, case-insensitive, matched on word
//! boundaries ("bad" blocks "Bad!" and "so bad", not "badge"; "buy now" blocks "BUY... now").
//!
//! Text is split into tokens: runs of letters and digits, and every other character that is not
//! white space or ASCII punctuation on its own (an emoji is a token). An entry matches where its
//! tokens appear in a row in the message. Scripts written without spaces (Chinese, Japanese) form
//! one long token per run, so an entry matches there only as a whole run.
use std::collections::HashMap;

/// Longest entry, in characters.
pub const MAX_WORD_CHARS: usize = 64;
/// Entries per creator.
pub const MAX_WORDS: usize = 1_000;

fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
            continue;
        }
        if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        if !(c.is_whitespace() || c.is_ascii_punctuation() || c.is_control()) {
            out.push(c.to_lowercase().collect());
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// An entry as stored: its tokens joined by single spaces ("Buy  NOW!" → "buy now"); `None`
/// when it has nothing to match on (only punctuation or spaces) or is too long.
pub fn normalise(entry: &str) -> Option<String> {
    let t = tokens(entry);
    (!t.is_empty() && entry.trim().chars().count() <= MAX_WORD_CHARS).then(|| t.join(" "))
}

/// A compiled list of blocked entries.
#[derive(Debug, Default)]
pub struct BlockedWords {
    /// Entries as token lists, by first token.
    by_first: HashMap<String, Vec<Vec<String>>>,
}

impl BlockedWords {
    pub fn new<'a>(entries: impl IntoIterator<Item = &'a str>) -> Self {
        let mut by_first: HashMap<String, Vec<Vec<String>>> = HashMap::new();
        for entry in entries {
            let t = tokens(entry);
            if let Some(first) = t.first() {
                by_first.entry(first.clone()).or_default().push(t);
            }
        }
        BlockedWords { by_first }
    }

    pub fn is_empty(&self) -> bool {
        self.by_first.is_empty()
    }

    /// Whether `text` contains a blocked entry.
    pub fn matches(&self, text: &str) -> bool {
        if self.by_first.is_empty() {
            return false;
        }
        let t = tokens(text);
        (0..t.len()).any(|i| {
            self.by_first
                .get(&t[i])
                .is_some_and(|entries| entries.iter().any(|e| t[i..].starts_with(e)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_words_any_case_not_inside_other_words() {
        let b = BlockedWords::new(["bad", "buy now", "😡"]);
        for blocked in [
            "bad",
            "BAD!",
            "so Bad.",
            "this is (bad)",
            "Buy   NOW!!!",
            "buy-now",
            "grr😡",
        ] {
            assert!(b.matches(blocked), "{blocked:?}");
        }
        for fine in [
            "badge",
            "abad",
            "bad_ge_x",
            "buy it now",
            "now buy",
            "",
            "😀",
        ] {
            let fine_ok = !b.matches(fine);
            // `bad_ge_x` splits at `_` (punctuation), so `bad` is a word there.
            assert_eq!(fine_ok, fine != "bad_ge_x", "{fine:?}");
        }
    }

    #[test]
    fn unicode_is_lowercased() {
        let b = BlockedWords::new(["straße", "ÉCOLE"]);
        assert!(b.matches("STRASSE? no: Straße!"));
        assert!(b.matches("l'école"));
        assert!(!b.matches("écoles"));
    }

    #[test]
    fn entries_are_normalised_and_empty_ones_refused() {
        assert_eq!(normalise("  Buy  NOW! ").as_deref(), Some("buy now"));
        assert_eq!(normalise("!!!"), None);
        assert_eq!(normalise("   "), None);
        assert_eq!(normalise(&"x".repeat(MAX_WORD_CHARS + 1)), None);
        assert!(BlockedWords::new([]).is_empty());
    }
}
