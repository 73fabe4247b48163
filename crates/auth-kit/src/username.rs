//! Usernames compared ignoring case, decided once, in Rust.
//!
//! [`fold`] is the one definition of "the same username": the store keeps
//! it in the `username_key` column (with the unique index), the login
//! lookup searches by it, and the limiters count failures under it. The
//! database's `lower()` never decides: SQLite's only folds ASCII and
//! PostgreSQL's depends on the server's locale.
//!
//! The steps are those of RFC 8265's UsernameCaseMapped profile: width
//! mapping (fullwidth and halfwidth forms to their ordinary characters),
//! Unicode lower case, then NFC. Unlike the profile, nothing is refused: a
//! login may name a user migrated from elsewhere with any characters, and
//! signup already accepts only `A-Z a-z 0-9 _ . -`.
//!
//! ```
//! use auth_kit::username::fold;
//!
//! assert_eq!(fold("Ann"), "ann");
//! assert_eq!(fold("ＡＤＭＩＮ"), "admin"); // fullwidth
//! assert_eq!(fold("A\u{30A}sa"), fold("\u{C5}SA")); // combining ring = Å
//! assert_ne!(fold("admİn"), fold("admin")); // U+0130 lower-cases to i + U+0307
//! ```

use unicode_normalization::UnicodeNormalization;

/// The folded form of `name`: width-mapped, lower-cased, NFC.
pub fn fold(name: &str) -> String {
    let mut mapped = String::with_capacity(name.len());
    for c in name.chars() {
        if is_width_variant(c) {
            unicode_normalization::char::decompose_compatible(c, |d| mapped.push(d));
        } else {
            mapped.push(c);
        }
    }
    mapped.to_lowercase().nfc().collect()
}

/// Characters whose compatibility decomposition is tagged `<wide>` or
/// `<narrow>` (the ideographic space, the Halfwidth and Fullwidth Forms
/// block, and the halfwidth won sign): the only ones RFC 8265's width
/// mapping changes. Unassigned code points in the block decompose to
/// themselves.
fn is_width_variant(c: char) -> bool {
    matches!(c, '\u{3000}' | '\u{20A9}' | '\u{FF01}'..='\u{FFEE}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, expected: &str) {
        assert_eq!(fold(name), expected, "fold({name:?})");
    }

    #[test]
    fn folding_table() {
        check("admin", "admin");
        check("ADMIN", "admin");
        check("Ann.Lee-2_x", "ann.lee-2_x");
        // Fullwidth and halfwidth forms.
        check("ＡＤＭＩＮ", "admin");
        check("ａｄｍｉｎ１", "admin1");
        check("ﾊﾟ", "パ"); // halfwidth katakana + sound mark, composed by NFC
        // Combining forms compose (NFC), before or after lower-casing.
        check("A\u{30A}SA", "\u{E5}sa");
        check("\u{C5}sa", "\u{E5}sa");
        // Dotted capital I keeps its dot: not the same name as "admin".
        check("admİn", "adm\u{69}\u{307}n");
        check("ADMİN", "adm\u{69}\u{307}n");
        // Other scripts lower-case too; ß stays ß (lower case, not case folding).
        check("ΣΊΣΥΦΟΣ", "σίσυφος");
        check("Straße", "straße");
        // Compatibility characters that are not width variants are kept.
        check("ﬁle", "ﬁle");
        check("x\u{2126}", "x\u{3c9}"); // OHM SIGN: lower case is omega
    }
}
