//! Generates the nano.v1 tonic/prost code. `protoc` comes from protoc-bin-vendored unless
//! `PROTOC` names one, so a fresh machine needs nothing installed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        let protoc = protoc_bin_vendored::protoc_bin_path()?;
        // SAFETY: build scripts are single-threaded; nothing else reads the environment now.
        unsafe { std::env::set_var("PROTOC", protoc) };
    }
    println!("cargo:rerun-if-changed=nano/v1/nano.proto");
    tonic_prost_build::configure().compile_protos(&["nano/v1/nano.proto"], &["."])?;
    Ok(())
}
