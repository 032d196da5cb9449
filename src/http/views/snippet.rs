//! A copy-paste line as pages show it, and how a word is made safe for a shell: the leaf
//! that the pages' snippet makers (`packages.rs`, `fetch.rs`) share.

/// One snippet: what to do with it, and the text to copy.
pub struct Snippet {
    pub caption: String,
    pub text: String,
}

/// `word` as one shell word: as is when it is plain, else single-quoted. Names come from
/// uploaders: a `;` or `$(...)` in one must never run when a reader pastes the line.
pub fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:=@%,".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        return word.to_owned();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}
