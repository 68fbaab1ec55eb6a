//! The sliver: an app's portable, content-addressed artifact. One file holding a manifest and
//! the app's module sources and WebAssembly binaries; its id is the SHA-256 of its bytes.
//!
//! Layout (see docs/SLIVER.md):
//!
//! ```text
//! "NANOSLV\0"           8 bytes, magic
//! manifest length        4 bytes, u32 little-endian
//! manifest               canonical JSON (fixed key order, no whitespace)
//! parts                  the bytes of every part, in manifest order, back to back
//! ```
//!
//! Both planes use this crate; it depends on no other workspace crate and on no JS engine.
//! Building the module graph (which needs a JS parser) is the caller's job: it hands
//! [`Sliver::build`] the files it found.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const MAGIC: &[u8; 8] = b"NANOSLV\0";
/// The format this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bounds that keep a hostile artifact from exhausting a node.
pub const MAX_MANIFEST_BYTES: usize = 1024 * 1024;
pub const MAX_PART_BYTES: u64 = 16 * 1024 * 1024;
pub const MAX_TOTAL_BYTES: u64 = 64 * 1024 * 1024;
pub const MAX_PARTS: usize = 4096;

/// What a part holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartKind {
    /// An ES module source (UTF-8).
    Module,
    /// A WebAssembly binary.
    Wasm,
    /// Engine-specific data (code cache, snapshot); only trusted when `engine` matches.
    EngineData,
}

/// One file of the sliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    /// Path relative to the app's folder, with `/` separators.
    pub name: String,
    pub kind: PartKind,
    pub size: u64,
    /// Lower-case hex SHA-256 of the part's bytes.
    pub sha256: String,
    /// For engine data: the exact engine version it was made with, e.g. `v8 13.7.152.7`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
}

/// The manifest at the head of a sliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    /// A name for humans (usually the entry file's folder).
    pub app: String,
    /// The entry module: one of `parts`, of kind `module`.
    pub entry: String,
    /// The engine the sliver was prepared with (informational; engine data carries its own).
    pub engine: String,
    pub parts: Vec<Part>,
}

/// A verified sliver held in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sliver {
    pub manifest: Manifest,
    /// `sha256` of the whole file, hex.
    pub id: String,
    bytes: Vec<u8>,
    /// Offset of each part's bytes in `bytes`, in manifest order.
    offsets: Vec<usize>,
}

/// Why a sliver was refused. Every message names the part (or header) and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SliverError {
    #[error("the file is empty, not a sliver")]
    Empty,
    #[error("not a sliver: the file does not start with the sliver magic")]
    BadMagic,
    #[error("truncated: {0}")]
    Truncated(String),
    #[error("manifest: {0}")]
    Manifest(String),
    #[error("part {part:?}: {reason}")]
    Part { part: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}

fn part_error(part: &str, reason: impl Into<String>) -> SliverError {
    SliverError::Part {
        part: part.to_owned(),
        reason: reason.into(),
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks that `name` is a safe relative path: `/`-separated, no `..`, `.`, empty or absolute
/// segments, no backslashes or NUL.
pub fn check_part_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.starts_with('/') || name.contains('\\') || name.contains('\0') || name.contains(':') {
        return Err("the name must be a relative path with '/' separators".into());
    }
    for segment in name.split('/') {
        match segment {
            "" => return Err("the name has an empty path segment".into()),
            "." | ".." => return Err("the name must not contain '.' or '..' segments".into()),
            _ => {}
        }
    }
    Ok(())
}

/// Checks the WebAssembly header: `\0asm` and version 1.
pub fn check_wasm_header(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err("not a WebAssembly module (missing the \\0asm magic)".into());
    }
    let version = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if version != 1 {
        return Err(format!(
            "WebAssembly version {version} is not supported (only 1)"
        ));
    }
    Ok(())
}

impl Sliver {
    /// Builds a sliver from `(name, kind, bytes)` files. The bytes are deterministic: parts are
    /// ordered by name and the manifest is canonical JSON.
    pub fn build(
        app: &str,
        entry: &str,
        engine: &str,
        files: Vec<(String, PartKind, Vec<u8>)>,
    ) -> Result<Self, SliverError> {
        let mut files = files;
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let parts = files
            .iter()
            .map(|(name, kind, bytes)| Part {
                name: name.clone(),
                kind: *kind,
                size: bytes.len() as u64,
                sha256: sha256_hex(bytes),
                engine: None,
            })
            .collect();
        let manifest = Manifest {
            format: FORMAT_VERSION,
            app: app.to_owned(),
            entry: entry.to_owned(),
            engine: engine.to_owned(),
            parts,
        };
        let json = serde_json::to_vec(&manifest).expect("a manifest serialises");
        let mut bytes = Vec::with_capacity(12 + json.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(json.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&json);
        for (_, _, data) in &files {
            bytes.extend_from_slice(data);
        }
        // Parse back: the builder must never produce a sliver the reader refuses.
        Self::from_bytes(bytes)
    }

    /// Parses and verifies every part. Nothing of an invalid sliver is returned.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, SliverError> {
        if bytes.is_empty() {
            return Err(SliverError::Empty);
        }
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(SliverError::BadMagic);
        }
        if bytes.len() < 12 {
            return Err(SliverError::Truncated(
                "the manifest length is missing".into(),
            ));
        }
        let manifest_len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        if manifest_len > MAX_MANIFEST_BYTES {
            return Err(SliverError::Manifest(format!(
                "{manifest_len} bytes is over the limit of {MAX_MANIFEST_BYTES}"
            )));
        }
        let body_start = 12 + manifest_len;
        if bytes.len() < body_start {
            return Err(SliverError::Truncated(format!(
                "the manifest needs {manifest_len} bytes, {} remain",
                bytes.len() - 12
            )));
        }
        let manifest: Manifest = serde_json::from_slice(&bytes[12..body_start])
            .map_err(|err| SliverError::Manifest(err.to_string()))?;
        if manifest.format != FORMAT_VERSION {
            return Err(SliverError::Manifest(format!(
                "format version {} is not supported (this nano reads version {FORMAT_VERSION}); \
                 rebuild the sliver with this version of nano",
                manifest.format
            )));
        }
        if manifest.parts.len() > MAX_PARTS {
            return Err(SliverError::Manifest(format!(
                "{} parts is over the limit of {MAX_PARTS}",
                manifest.parts.len()
            )));
        }
        let mut names = BTreeSet::new();
        let mut offsets = Vec::with_capacity(manifest.parts.len());
        let mut offset = body_start as u64;
        let mut total = 0u64;
        for part in &manifest.parts {
            check_part_name(&part.name).map_err(|reason| part_error(&part.name, reason))?;
            if !names.insert(part.name.as_str()) {
                return Err(part_error(&part.name, "the name appears twice"));
            }
            if part.size > MAX_PART_BYTES {
                return Err(part_error(
                    &part.name,
                    format!("{} bytes is over the limit of {MAX_PART_BYTES}", part.size),
                ));
            }
            total += part.size;
            if total > MAX_TOTAL_BYTES {
                return Err(SliverError::Invalid(format!(
                    "the parts add up to more than the limit of {MAX_TOTAL_BYTES} bytes"
                )));
            }
            let end = offset + part.size;
            if end > bytes.len() as u64 {
                return Err(SliverError::Truncated(format!(
                    "part {:?} needs {} bytes, {} remain",
                    part.name,
                    part.size,
                    bytes.len() as u64 - offset.min(bytes.len() as u64)
                )));
            }
            let data = &bytes[offset as usize..end as usize];
            if sha256_hex(data) != part.sha256 {
                return Err(part_error(
                    &part.name,
                    "its SHA-256 does not match the manifest (corrupted)",
                ));
            }
            match part.kind {
                PartKind::Module => {
                    std::str::from_utf8(data)
                        .map_err(|err| part_error(&part.name, format!("not valid UTF-8: {err}")))?;
                }
                PartKind::Wasm => {
                    check_wasm_header(data).map_err(|reason| part_error(&part.name, reason))?
                }
                PartKind::EngineData => {
                    if part.engine.is_none() {
                        return Err(part_error(
                            &part.name,
                            "engine data without an engine version",
                        ));
                    }
                }
            }
            offsets.push(offset as usize);
            offset = end;
        }
        if offset != bytes.len() as u64 {
            return Err(SliverError::Invalid(format!(
                "{} bytes after the last part: the file was appended to or corrupted",
                bytes.len() as u64 - offset
            )));
        }
        match manifest.parts.iter().find(|p| p.name == manifest.entry) {
            Some(part) if part.kind == PartKind::Module => {}
            Some(_) => {
                return Err(SliverError::Manifest(format!(
                    "the entry {:?} is not a module",
                    manifest.entry
                )));
            }
            None => {
                return Err(SliverError::Manifest(format!(
                    "the entry {:?} is not among the parts",
                    manifest.entry
                )));
            }
        }
        let id = sha256_hex(&bytes);
        Ok(Self {
            manifest,
            id,
            bytes,
            offsets,
        })
    }

    /// Reads and verifies a sliver file.
    pub fn read(path: &std::path::Path) -> Result<Self, SliverError> {
        let bytes = std::fs::read(path).map_err(|err| {
            SliverError::Invalid(format!("cannot read {}: {err}", path.display()))
        })?;
        Self::from_bytes(bytes)
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes of part `name`.
    pub fn part(&self, name: &str) -> Option<&[u8]> {
        let index = self.manifest.parts.iter().position(|p| p.name == name)?;
        let start = self.offsets[index];
        Some(&self.bytes[start..start + self.manifest.parts[index].size as usize])
    }

    /// The source of module `name` (verified UTF-8 on load).
    pub fn module_source(&self, name: &str) -> Option<&str> {
        let part = self.manifest.parts.iter().find(|p| p.name == name)?;
        if part.kind != PartKind::Module {
            return None;
        }
        self.part(name)
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Sliver {
        Sliver::build(
            "demo",
            "app.js",
            "v8 test",
            vec![
                (
                    "lib/util.js".into(),
                    PartKind::Module,
                    b"export const x = 1;".to_vec(),
                ),
                (
                    "app.js".into(),
                    PartKind::Module,
                    b"import {x} from './lib/util.js';".to_vec(),
                ),
                (
                    "add.wasm".into(),
                    PartKind::Wasm,
                    b"\0asm\x01\0\0\0".to_vec(),
                ),
            ],
        )
        .unwrap()
    }

    #[test]
    fn build_is_deterministic_and_round_trips() {
        let a = sample();
        let b = sample();
        assert_eq!(a.bytes(), b.bytes());
        assert_eq!(a.id, b.id);
        assert_eq!(a.id, sha256_hex(a.bytes()));
        let back = Sliver::from_bytes(a.bytes().to_vec()).unwrap();
        assert_eq!(
            back.module_source("lib/util.js"),
            Some("export const x = 1;")
        );
        assert_eq!(back.part("add.wasm").unwrap().len(), 8);
        assert_eq!(
            back.manifest.parts[0].name, "add.wasm",
            "parts are sorted by name"
        );
    }

    #[test]
    fn corruption_is_refused_with_the_part_and_reason() {
        let good = sample().bytes().to_vec();
        let err = |bytes: Vec<u8>| Sliver::from_bytes(bytes).unwrap_err().to_string();

        assert_eq!(err(Vec::new()), "the file is empty, not a sliver");
        assert!(err(b"hello world".to_vec()).contains("magic"));
        assert!(
            err(good[..good.len() - 3].to_vec()).starts_with("truncated: part \"lib/util.js\"")
        );
        assert!(err(good[..20].to_vec()).starts_with("truncated: the manifest"));

        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x20;
        assert_eq!(
            err(flipped),
            "part \"lib/util.js\": its SHA-256 does not match the manifest (corrupted)"
        );

        let mut appended = good.clone();
        appended.extend_from_slice(b"extra");
        assert!(err(appended).contains("after the last part"));
    }

    fn with_manifest(
        edit: impl Fn(&mut serde_json::Value),
        parts: &[u8],
    ) -> Result<Sliver, SliverError> {
        let sliver = sample();
        let mut manifest = serde_json::to_value(&sliver.manifest).unwrap();
        edit(&mut manifest);
        let json = serde_json::to_vec(&manifest).unwrap();
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&(json.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&json);
        bytes.extend_from_slice(parts);
        Sliver::from_bytes(bytes)
    }

    #[test]
    fn unsafe_names_versions_and_schema_are_refused() {
        let sliver = sample();
        let body: Vec<u8> =
            sliver.bytes()[12 + serde_json::to_vec(&sliver.manifest).unwrap().len()..].to_vec();
        for (name, needle) in [
            ("../evil.js", "'.' or '..'"),
            ("/etc/passwd", "relative path"),
            ("a//b.js", "empty path segment"),
            ("C:\\x.js", "relative path"),
        ] {
            let err = with_manifest(|m| m["parts"][1]["name"] = name.into(), &body).unwrap_err();
            assert!(err.to_string().contains(needle), "{name}: {err}");
        }
        let err = with_manifest(|m| m["parts"][2]["name"] = "app.js".into(), &body).unwrap_err();
        assert!(err.to_string().contains("appears twice"), "{err}");
        let err = with_manifest(|m| m["format"] = 2.into(), &body).unwrap_err();
        assert!(
            err.to_string()
                .contains("format version 2 is not supported"),
            "{err}"
        );
        let err = with_manifest(|m| m["extra"] = 1.into(), &body).unwrap_err();
        assert!(
            err.to_string().starts_with("manifest: unknown field"),
            "{err}"
        );
        let err = with_manifest(|m| m["entry"] = "missing.js".into(), &body).unwrap_err();
        assert!(err.to_string().contains("not among the parts"), "{err}");
        let err = with_manifest(
            |m| m["parts"][2]["size"] = (MAX_PART_BYTES + 1).into(),
            &body,
        )
        .unwrap_err();
        assert!(err.to_string().contains("over the limit"), "{err}");
    }

    #[test]
    fn wasm_headers_are_checked() {
        assert!(check_wasm_header(b"\0asm\x01\0\0\0").is_ok());
        assert!(
            check_wasm_header(b"\0asm\x02\0\0\0")
                .unwrap_err()
                .contains("version 2")
        );
        assert!(
            check_wasm_header(b"MZ\0\0\0\0\0\0")
                .unwrap_err()
                .contains("magic")
        );
        let err = Sliver::build(
            "a",
            "app.js",
            "e",
            vec![
                ("app.js".into(), PartKind::Module, b"".to_vec()),
                ("bad.wasm".into(), PartKind::Wasm, b"not wasm".to_vec()),
            ],
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("part \"bad.wasm\": not a WebAssembly module"),
            "{err}"
        );
    }
}
