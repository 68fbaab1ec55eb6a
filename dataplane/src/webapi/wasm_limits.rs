//! Caps the memories a WebAssembly module defines at the isolate's memory limit before V8
//! compiles it: a declared maximum above the limit is lowered to it (so `memory.grow`, from JS or
//! from inside the module, fails past it), a module with no maximum gets the limit as one, and a
//! module whose memory starts larger than the limit is refused. Only the memory section is
//! re-encoded (wasm-encoder over wasmparser); every other section is copied as it is.

use wasm_encoder::reencode::{Error, Reencode};

struct Cap {
    limit_bytes: u64,
}

impl Reencode for Cap {
    type Error = String;

    fn memory_type(
        &mut self,
        ty: wasmparser::MemoryType,
    ) -> Result<wasm_encoder::MemoryType, Error<String>> {
        let page = 1u64 << ty.page_size_log2.unwrap_or(16);
        let cap = self.limit_bytes / page;
        if ty.initial > cap {
            return Err(Error::UserError(format!(
                "the module defines a memory of {} pages ({} bytes) to start with, more than the \
                 isolate's memory limit allows ({cap} pages, limits.memory_mb)",
                ty.initial,
                ty.initial.saturating_mul(page)
            )));
        }
        Ok(wasm_encoder::MemoryType {
            minimum: ty.initial,
            maximum: Some(ty.maximum.map_or(cap, |max| max.min(cap))),
            memory64: ty.memory64,
            shared: ty.shared,
            page_size_log2: ty.page_size_log2,
        })
    }
}

/// What capping did to a module's bytes.
pub enum Capped {
    /// The module defines no memory: use the bytes as they are.
    Unchanged,
    /// The module with its memories capped, and how many it defines.
    Rewritten(Vec<u8>, u32),
}

/// Caps the memories `bytes` defines at `limit_bytes`. Bytes that do not parse are left for V8
/// to reject with its own message (`Unchanged`); a memory that starts over the limit is an error
/// saying so.
pub fn cap_memories(bytes: &[u8], limit_bytes: u64) -> Result<Capped, String> {
    let mut cap = Cap { limit_bytes };
    let mut module = wasm_encoder::Module::new();
    let mut defined = None;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else {
            return Ok(Capped::Unchanged);
        };
        match &payload {
            wasmparser::Payload::Version {
                encoding: wasmparser::Encoding::Component,
                ..
            } => return Ok(Capped::Unchanged),
            wasmparser::Payload::MemorySection(reader) => {
                let mut section = wasm_encoder::MemorySection::new();
                defined = Some(reader.count());
                cap.parse_memory_section(&mut section, reader.clone())
                    .map_err(|err| match err {
                        Error::UserError(message) => message,
                        other => format!("the memory section cannot be read: {other}"),
                    })?;
                module.section(&section);
                continue;
            }
            _ => {}
        }
        if let Some((id, range)) = payload.as_section() {
            let data = &bytes[range.start as usize..range.end as usize];
            module.section(&wasm_encoder::RawSection { id, data });
        }
    }
    Ok(match defined {
        Some(count) => Capped::Rewritten(module.finish(), count),
        None => Capped::Unchanged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (module (memory (export "m") 1 <max>)) with an optional maximum.
    fn module_with_memory(initial: u8, maximum: Option<u8>) -> Vec<u8> {
        let mut bytes = vec![0, 0x61, 0x73, 0x6d, 1, 0, 0, 0];
        let limits = match maximum {
            Some(max) => vec![1, initial, max],
            None => vec![0, initial],
        };
        bytes.extend([5, limits.len() as u8 + 1, 1]);
        bytes.extend(limits);
        bytes.extend([7, 5, 1, 1, b'm', 2, 0]);
        bytes
    }

    fn memory_of(bytes: &[u8]) -> wasmparser::MemoryType {
        for payload in wasmparser::Parser::new(0).parse_all(bytes) {
            if let wasmparser::Payload::MemorySection(reader) = payload.unwrap() {
                return reader.into_iter().next().unwrap().unwrap();
            }
        }
        panic!("no memory section");
    }

    #[test]
    fn maximums_are_capped_and_oversized_memories_refused() {
        let limit = 10 * 65536;
        let Capped::Rewritten(capped, 1) =
            cap_memories(&module_with_memory(1, None), limit).unwrap()
        else {
            panic!("not rewritten");
        };
        assert_eq!(
            memory_of(&capped).maximum,
            Some(10),
            "no maximum: the limit"
        );
        wasmparser::validate(&capped).expect("still a valid module");
        let Capped::Rewritten(capped, _) =
            cap_memories(&module_with_memory(1, Some(100)), limit).unwrap()
        else {
            panic!("not rewritten");
        };
        assert_eq!(memory_of(&capped).maximum, Some(10), "lowered to the limit");
        let Capped::Rewritten(kept, _) =
            cap_memories(&module_with_memory(1, Some(4)), limit).unwrap()
        else {
            panic!("not rewritten");
        };
        assert_eq!(memory_of(&kept).maximum, Some(4), "a smaller maximum stays");
        let refused = cap_memories(&module_with_memory(20, None), limit)
            .err()
            .unwrap();
        assert!(refused.contains("20 pages"), "{refused}");
        assert!(matches!(
            cap_memories(b"\0asm\x01\0\0\0garbage", limit).unwrap(),
            Capped::Unchanged
        ));
    }
}
