//! What `get` and `download` read of the server's JSON: the formats of a job or product
//! version, and the file names of a format, typed and bounded (at most [`MAX_NAMES`] per
//! list), so that a hostile server's answer costs the client little memory and no guess.

use super::ClientError;
use super::remote::Reply;
use serde::Deserialize;
use serde::de::{Deserializer, Error as _, SeqAccess, Visitor};

/// Names one list may hold: a million files in one format is beyond any build's output,
/// and bounds what parsing an answer may take (a few hundred MiB at worst).
pub const MAX_NAMES: usize = 1_000_000;

/// A job, a product version or a format, as far as a download needs it.
#[derive(Deserialize)]
pub struct Entity {
    pub job: Option<Formats>,
    pub version: Option<Formats>,
    pub artifact_format: Option<Files>,
}

#[derive(Deserialize)]
pub struct Formats {
    #[serde(deserialize_with = "bounded")]
    pub artifact_formats: Vec<String>,
}

#[derive(Deserialize)]
pub struct Files {
    #[serde(deserialize_with = "bounded")]
    pub files: Vec<String>,
}

/// The entity `reply` describes; an error for anything that is not one (a proxy's login
/// page, say).
pub fn read(reply: Reply) -> Result<Entity, ClientError> {
    reply.json_as("a listing")
}

/// A list of names, refused past [`MAX_NAMES`] before more are read.
fn bounded<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct Names;
    impl<'de> Visitor<'de> for Names {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a list of at most {MAX_NAMES} names")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut names = Vec::new();
            while let Some(name) = seq.next_element::<String>()? {
                if names.len() == MAX_NAMES {
                    return Err(A::Error::custom(format!("more than {MAX_NAMES} names")));
                }
                names.push(name);
            }
            Ok(names)
        }
    }
    d.deserialize_seq(Names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_names_and_bounded() {
        let parse = |text: &str| serde_json::from_str::<Entity>(text);
        let e = parse(r#"{"artifact_format": {"name": "f", "files": ["a", "b/c"]}}"#).unwrap();
        assert_eq!(e.artifact_format.unwrap().files, ["a", "b/c"]);
        let e = parse(r#"{"job": {"artifact_formats": ["deb"], "locked": true}}"#).unwrap();
        assert_eq!(e.job.unwrap().artifact_formats, ["deb"]);
        assert!(parse(r#"{"artifact_format": {"files": [1]}}"#).is_err());
        let many = format!(
            r#"{{"artifact_format": {{"files": [{}]}}}}"#,
            vec![r#""a""#; MAX_NAMES + 1].join(",")
        );
        let err = parse(&many).err().unwrap().to_string();
        assert!(err.contains("more than"), "{err}");
    }
}
