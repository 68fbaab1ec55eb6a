//! `nano sliver build` and `nano sliver inspect`: packing an app's module graph into a sliver
//! (the graph is found by compiling the modules with V8, which resolves every import), and
//! showing a verified sliver's manifest.

use std::path::Path;

use nano_sliver::{PartKind, Sliver};

use crate::isolate;

/// Builds the sliver of the app whose entry module is `entry` and writes it to `out`.
pub fn build(entry: &Path, out: &Path) -> Result<Sliver, String> {
    let sliver = pack(entry)?;
    isolate::prepare::write_atomically(out, sliver.bytes())
        .map_err(|err| format!("cannot write {}: {err}", out.display()))?;
    Ok(sliver)
}

/// Packs the app whose entry module is `entry` (every module compiles, every import resolves).
pub fn pack(entry: &Path) -> Result<Sliver, String> {
    let (entry_name, files) = isolate::collect_modules(entry).map_err(|err| err.to_string())?;
    let app = entry
        .parent()
        .and_then(|dir| std::path::absolute(dir).ok())
        .and_then(|dir| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "app".into());
    let parts = files
        .into_iter()
        .map(|(name, bytes)| {
            let kind = if name.ends_with(".wasm") {
                PartKind::Wasm
            } else {
                PartKind::Module
            };
            (name.replace('\\', "/"), kind, bytes)
        })
        .collect();
    Sliver::build(
        &app,
        &entry_name.replace('\\', "/"),
        &isolate::engine_version(),
        parts,
    )
    .map_err(|err| err.to_string())
}

/// The id and manifest of a verified sliver, for humans.
pub fn inspect(path: &Path) -> Result<String, String> {
    let sliver = Sliver::read(path).map_err(|err| err.to_string())?;
    let manifest = serde_json::to_string_pretty(&sliver.manifest).expect("a manifest serialises");
    Ok(format!(
        "id {}\nsize {} bytes\n{manifest}",
        sliver.id,
        sliver.bytes().len()
    ))
}
