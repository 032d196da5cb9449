//! JSON objects that merge storage values into one map, key for key as dlrepo writes them
//! (spec/API.md §3.5–3.6); the bytes are pinned by tests/tree_api.rs.

use crate::storage::{FileFacts, FormatInfo, JobEntry, JobInfo, TagInfo};
use serde_json::{Map, Value};

/// A job in a tag listing: its metadata keys sorted, then `locked`, `name` and `released`,
/// appended, or overwriting a metadata key of that name in place.
pub fn job_entry(e: &JobEntry) -> Map<String, Value> {
    let mut m = e.metadata.clone();
    m.insert("locked".into(), e.locked.into());
    m.insert("name".into(), e.name.clone().into());
    m.insert("released".into(), e.released.into());
    m
}

/// A job as GET shows it: the listing's entry, then the job's own fields.
pub fn job(info: &JobInfo) -> Map<String, Value> {
    let mut m = job_entry(&info.entry);
    m.insert("internal".into(), info.internal.into());
    m.insert("timestamp".into(), info.timestamp.clone());
    m.insert("digest".into(), info.digest.clone().into());
    let formats: Vec<Value> = info.formats.iter().map(|f| f.clone().into()).collect();
    m.insert("artifact_formats".into(), formats.into());
    m
}

/// A tag with `jobs`, already filtered, as the last key.
pub fn tag(info: &TagInfo, jobs: Vec<Map<String, Value>>) -> Result<Value, serde_json::Error> {
    let mut value = serde_json::to_value(info)?;
    if let Value::Object(m) = &mut value {
        m.insert("jobs".into(), jobs.into_iter().map(Value::Object).collect());
    }
    Ok(value)
}

/// `GET {format}/?details`: the format as its plain JSON shows it, with one object per
/// file instead of its name. The content type is the one a download of it answers.
pub fn format_details(info: &FormatInfo, files: &[FileFacts]) -> Value {
    let files: Vec<Value> = files
        .iter()
        .map(|f| {
            let mut m = Map::new();
            m.insert("name".into(), f.name.clone().into());
            m.insert("size".into(), f.size.into());
            m.insert("digest".into(), f.digest.clone().into());
            let ctype = super::download::content_type_of(&f.name);
            m.insert("content_type".into(), ctype.into());
            let mtime = serde_json::Number::from_f64(f.mtime).map_or(Value::from(0), Value::Number);
            m.insert("mtime".into(), mtime);
            Value::Object(m)
        })
        .collect();
    let mut m = Map::new();
    m.insert("name".into(), info.name.clone().into());
    m.insert("internal".into(), info.internal.into());
    m.insert("dirty".into(), info.dirty.into());
    m.insert("files".into(), files.into());
    let mut outer = Map::new();
    outer.insert("artifact_format".into(), Value::Object(m));
    Value::Object(outer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fixed_keys_follow_the_metadata_or_take_its_place() {
        let metadata = json!({"arch": "x86", "name": "theirs", "zeta": 1});
        let Value::Object(metadata) = metadata else {
            unreachable!("an object literal")
        };
        let info = JobInfo {
            entry: JobEntry {
                name: "j1".into(),
                metadata,
                locked: true,
                released: false,
            },
            internal: false,
            timestamp: json!(0),
            digest: String::new(),
            formats: vec!["iso".into()],
            rendered: None,
        };
        assert_eq!(
            crate::pyjson::to_string(&Value::Object(job(&info))),
            r#"{"arch": "x86", "name": "j1", "zeta": 1, "locked": true, "released": false, "internal": false, "timestamp": 0, "digest": "", "artifact_formats": ["iso"]}"#
        );
    }
}
