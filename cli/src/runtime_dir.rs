//! Mesa's window-system code, which runs when wgpu opens a Vulkan or GL instance, prints
//! `error: XDG_RUNTIME_DIR is invalid or not set in the environment.` on a machine without
//! a login session (a server, a container, CI). kiln draws no windows, so before any
//! adapter is probed it points an unset or unusable XDG_RUNTIME_DIR at a private
//! directory of its own, `$TMPDIR/kiln-xdg-<uid>` (mode 0700), instead of letting a
//! harmless probe read like a failure.

use std::path::{Path, PathBuf};

/// Set XDG_RUNTIME_DIR to kiln's private directory when it is unset or not a directory
/// this user owns. Must run before any other thread exists (first thing in `main`).
pub fn ensure() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| usable(Path::new(&d))) {
        return;
    }
    let Some(dir) = private_dir() else { return };
    // Called at the top of `main`, before any thread that could read the environment
    // concurrently is started.
    std::env::set_var("XDG_RUNTIME_DIR", dir);
}

/// This process's uid: the owner of `/proc/self` (Linux). None elsewhere, where the
/// directory is then used without an ownership check.
#[cfg(unix)]
fn uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid()).ok()
}

#[cfg(unix)]
fn usable(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(dir), uid()) {
        (Ok(m), Some(uid)) => m.is_dir() && m.uid() == uid,
        (Ok(m), None) => m.is_dir(),
        _ => false,
    }
}

#[cfg(unix)]
fn private_dir() -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("kiln-xdg-{}", uid()?));
    std::fs::create_dir_all(&dir).ok()?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).ok()?;
    usable(&dir).then_some(dir)
}

#[cfg(not(unix))]
fn usable(dir: &Path) -> bool {
    dir.is_dir()
}

#[cfg(not(unix))]
fn private_dir() -> Option<PathBuf> {
    None
}
