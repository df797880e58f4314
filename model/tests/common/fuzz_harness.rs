//! The machinery of the bounded, seeded fuzz harnesses (fuzz_loaders.rs: the file
//! readers; fuzz_model_load.rs: `Model::load` on every family): a counting global
//! allocator that tracks the largest single allocation of the thread opening a case,
//! seeded mutations of binary files (u32/u64 header fields, bit flips, byte runs,
//! truncation, deleted or duplicated ranges), of JSON and of safetensors headers, and
//! the loop that runs each case on its own thread with a timeout and reports failures
//! with a replayable seed. Each test binary that includes this module gets its own
//! `#[global_allocator]`.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::tempdir;
use crate::gguf_writer::{Field, Width};

/// Opens a target (file or directory) and touches it as a caller would; `Err` carries the
/// loader's message, which must name the target.
pub type Opener = fn(&Path) -> Result<(), String>;

/// A case that runs longer than this is a failure (a hang).
pub const CASE_TIMEOUT: Duration = Duration::from_secs(10);

// ------------------------------------------------------------------ allocator

/// Allowed on top of the input size for the largest single allocation of a reader.
pub const SLACK: usize = 1 << 20;
/// Beyond this, an allocation made while opening is refused (the process aborts with a
/// message naming the case) instead of letting a bug exhaust the machine.
const HARD_CAP: usize = 256 << 20;

struct CountingAlloc;

thread_local! {
    pub static TRACKING: Cell<bool> = const { Cell::new(false) };
    pub static LARGEST: Cell<usize> = const { Cell::new(0) };
    /// The running case's description (pointer, length), printed if HARD_CAP is hit.
    static CASE: Cell<(*const u8, usize)> = const { Cell::new((std::ptr::null(), 0)) };
}

fn note(size: usize) -> bool {
    TRACKING
        .try_with(|t| {
            if !t.get() {
                return true;
            }
            let _ = LARGEST.try_with(|m| m.set(m.get().max(size)));
            if size > HARD_CAP {
                t.set(false);
                report_hard_cap(size);
                return false;
            }
            true
        })
        .unwrap_or(true)
}

#[cold]
fn report_hard_cap(size: usize) {
    use std::io::Write;
    let (ptr, len) = CASE.try_with(Cell::get).unwrap_or((std::ptr::null(), 0));
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "\nfuzz: an allocation of {size} bytes while opening a mutated input; case:");
    if !ptr.is_null() {
        // SAFETY: CASE points at the description String the fuzz loop keeps alive while
        // the case runs on this thread.
        let _ = err.write_all(unsafe { std::slice::from_raw_parts(ptr, len) });
    }
    let _ = writeln!(err);
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !note(new_size) {
            return std::ptr::null_mut();
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

// ------------------------------------------------------------------ rng

/// SplitMix64: tiny, seedable, good enough for picking mutations.
#[derive(Clone)]
pub struct Rng(pub u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

pub fn case_seed(base: u64, index: u64) -> u64 {
    Rng(base ^ index.wrapping_mul(0xa076_1d64_78bd_642f)).next()
}

// ------------------------------------------------------------------ mutations

pub fn interesting_u64(rng: &mut Rng, orig: u64, len: u64) -> u64 {
    let fixed = [
        0,
        1,
        2,
        3,
        4,
        7,
        8,
        31,
        32,
        33,
        63,
        64,
        255,
        256,
        4095,
        4096,
        65535,
        65536,
        (1 << 31) - 1,
        1 << 31,
        u32::MAX as u64,
        1 << 32,
        (1 << 32) + 1,
        1 << 40,
        1 << 48,
        1 << 53,
        1 << 62,
        i64::MAX as u64,
        1 << 63,
        u64::MAX - 31,
        u64::MAX - 1,
        u64::MAX,
    ];
    match rng.below(6) {
        0 | 1 => *rng.pick(&fixed),
        2 => [len.wrapping_sub(1), len, len + 1, len * 2, len + 32][rng.below(5)],
        3 => orig.wrapping_add(*rng.pick(&[1u64, 2, 8, 32, u64::MAX, u64::MAX - 7, u64::MAX - 31])),
        4 => orig ^ (1 << rng.below(64)),
        _ => rng.next() >> rng.below(64),
    }
}

pub fn interesting_u32(rng: &mut Rng, orig: u32) -> u32 {
    let fixed = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 14, 15, 30, 31, 39, 41, 42, 255, 256, 65535, 1 << 31, u32::MAX];
    match rng.below(4) {
        0 | 1 => *rng.pick(&fixed),
        2 => orig.wrapping_add(*rng.pick(&[1u32, 2, u32::MAX])),
        _ => rng.next() as u32,
    }
}

pub fn read_field(bytes: &[u8], f: &Field) -> Option<u64> {
    match f.width {
        Width::U32 => bytes.get(f.at..f.at + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()) as u64),
        Width::U64 => bytes.get(f.at..f.at + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap())),
    }
}

/// One binary mutation; returns its description.
pub fn mutate_binary_once(rng: &mut Rng, bytes: &mut Vec<u8>, fields: &[Field]) -> String {
    let len = bytes.len();
    match rng.below(9) {
        0 => {
            // Truncate: anywhere, or just around a field.
            let at = if !fields.is_empty() && rng.chance(50) {
                (rng.pick(fields).at + rng.below(9)).min(len)
            } else {
                rng.below(len + 1)
            };
            bytes.truncate(at);
            format!("truncate to {at} bytes")
        }
        1 => {
            let n = 1 + rng.below(8);
            let mut bits = Vec::new();
            for _ in 0..n {
                if bytes.is_empty() {
                    break;
                }
                let bit = rng.below(bytes.len() * 8);
                bytes[bit / 8] ^= 1 << (bit % 8);
                bits.push(bit);
            }
            format!("flip bits {bits:?}")
        }
        2..=4 if !fields.is_empty() => {
            let f = rng.pick(fields).clone();
            let orig = read_field(bytes, &f).unwrap_or(0);
            match f.width {
                Width::U64 => {
                    let v = interesting_u64(rng, orig, len as u64);
                    if let Some(b) = bytes.get_mut(f.at..f.at + 8) {
                        b.copy_from_slice(&v.to_le_bytes());
                    }
                    format!("set u64 field {} (at {}) from {orig} to {v}", f.name, f.at)
                }
                Width::U32 => {
                    let v = interesting_u32(rng, orig as u32);
                    if let Some(b) = bytes.get_mut(f.at..f.at + 4) {
                        b.copy_from_slice(&v.to_le_bytes());
                    }
                    format!("set u32 field {} (at {}) from {orig} to {v}", f.name, f.at)
                }
            }
        }
        5 => {
            // An interesting integer at any (unaligned) position.
            let at = rng.below(len.max(1));
            if rng.chance(50) {
                let v = interesting_u64(rng, 0, len as u64).to_le_bytes();
                let n = v.len().min(len.saturating_sub(at));
                bytes[at..at + n].copy_from_slice(&v[..n]);
                format!("write u64 {} at {at}", u64::from_le_bytes(v))
            } else {
                let v = interesting_u32(rng, 0).to_le_bytes();
                let n = v.len().min(len.saturating_sub(at));
                bytes[at..at + n].copy_from_slice(&v[..n]);
                format!("write u32 {} at {at}", u32::from_le_bytes(v))
            }
        }
        6 => {
            let at = rng.below(len.max(1));
            let n = (1 + rng.below(16)).min(len.saturating_sub(at));
            let fill = *rng.pick(&[0x00u8, 0xff, 0x7f, 0x80]);
            let random = rng.chance(30);
            for b in &mut bytes[at..at + n] {
                *b = if random { rng.next() as u8 } else { fill };
            }
            format!(
                "overwrite {n} bytes at {at} with {}",
                if random { "random bytes".into() } else { format!("{fill:#04x}") }
            )
        }
        7 => {
            let at = rng.below(len.max(1));
            let n = (1 + rng.below(32)).min(len.saturating_sub(at));
            bytes.drain(at..at + n);
            format!("delete {n} bytes at {at}")
        }
        _ => {
            let from = rng.below(len.max(1));
            let n = (1 + rng.below(32)).min(len.saturating_sub(from));
            let chunk = bytes[from..from + n].to_vec();
            let to = rng.below(bytes.len() + 1);
            bytes.splice(to..to, chunk);
            format!("copy {n} bytes from {from} to {to}")
        }
    }
}

pub fn mutate_binary(rng: &mut Rng, bytes: &mut Vec<u8>, fields: &[Field]) -> String {
    let n = if rng.chance(75) { 1 } else { 2 + rng.below(2) };
    (0..n).map(|_| mutate_binary_once(rng, bytes, fields)).collect::<Vec<_>>().join("; ")
}

type Spans = Vec<(usize, usize)>;

/// Byte ranges of JSON number tokens and of string contents (between the quotes).
pub fn json_tokens(text: &[u8]) -> (Spans, Spans) {
    let (mut numbers, mut strings) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        if c == b'"' {
            let start = i + 1;
            let mut j = start;
            while j < text.len() && text[j] != b'"' {
                j += if text[j] == b'\\' { 2 } else { 1 };
            }
            strings.push((start, j.min(text.len())));
            i = j + 1;
        } else if c.is_ascii_digit() || c == b'-' {
            let start = i;
            while i < text.len() && matches!(text[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                i += 1;
            }
            numbers.push((start, i));
        } else {
            i += 1;
        }
    }
    (numbers, strings)
}

const JSON_NUMBERS: [&str; 25] = [
    "0",
    "-1",
    "1",
    "2",
    "3",
    "7",
    "100000",
    "1000000000",
    "65536",
    "4294967295",
    "4294967296",
    "9007199254740993",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "340282366920938463463374607431768211456",
    "1e400",
    "-1e400",
    "1e-400",
    "0.5",
    "-0",
    "1.0",
    "1e18",
    "123456789012345678901234567890",
];

const JSON_STRINGS: [&str; 18] = [
    "",
    "F32",
    "F16",
    "BF16",
    "I64",
    "U8",
    "F8_E4M3",
    "F4",
    "BOOL",
    "__metadata__",
    "model.safetensors",
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
    "missing.safetensors",
    "transformer.wte.weight",
    "model.embed_tokens.weight",
    "qwen2",
    "\\u0000",
];

pub fn mutate_json_once(rng: &mut Rng, text: &mut Vec<u8>) -> String {
    let (numbers, strings) = json_tokens(text);
    match rng.below(9) {
        0..=2 if !numbers.is_empty() => {
            let (a, b) = *rng.pick(&numbers);
            let new = if rng.chance(10) { "9".repeat(1 + rng.below(400)) } else { rng.pick(&JSON_NUMBERS).to_string() };
            let old = String::from_utf8_lossy(&text[a..b]).into_owned();
            text.splice(a..b, new.bytes());
            format!("replace number {old} at {a} with {new}")
        }
        3 | 4 if !strings.is_empty() => {
            let (a, b) = *rng.pick(&strings);
            let new = if rng.chance(10) { "x".repeat(rng.below(5000)) } else { rng.pick(&JSON_STRINGS).to_string() };
            let old = String::from_utf8_lossy(&text[a..b]).into_owned();
            text.splice(a..b, new.bytes());
            format!(
                "replace string {old:?} at {a} with {:?}",
                if new.len() > 40 { format!("{} bytes", new.len()) } else { new }
            )
        }
        5 => {
            let at = rng.below(text.len() + 1);
            let ins = *rng.pick(&["{", "}", "[", "]", ",", ":", "\"", "null", "true", "[[[[[[[[", "-", "0"]);
            text.splice(at..at, ins.bytes());
            format!("insert {ins:?} at {at}")
        }
        _ => mutate_binary_once(rng, text, &[]),
    }
}

pub fn mutate_json(rng: &mut Rng, text: &mut Vec<u8>) -> String {
    let n = if rng.chance(75) { 1 } else { 2 + rng.below(2) };
    (0..n).map(|_| mutate_json_once(rng, text)).collect::<Vec<_>>().join("; ")
}

/// Mutate a safetensors file: its bytes, or the JSON of its header (then, mostly, fix the
/// header length so the new JSON is what gets parsed).
pub fn mutate_safetensors(rng: &mut Rng, bytes: &mut Vec<u8>) -> String {
    let header_len = bytes.get(..8).map_or(u64::MAX, |b| u64::from_le_bytes(b.try_into().unwrap()));
    if rng.chance(45) && header_len <= bytes.len().saturating_sub(8) as u64 {
        let header_len = header_len as usize;
        let mut json = bytes[8..8 + header_len].to_vec();
        let mut d = format!("header JSON: {}", mutate_json(rng, &mut json));
        let mut out = Vec::with_capacity(bytes.len());
        let fix = rng.chance(85);
        let len = if fix { json.len() as u64 } else { header_len as u64 };
        if fix {
            d.push_str(&format!("; header length set to {len}"));
        }
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&json);
        out.extend_from_slice(&bytes[8 + header_len..]);
        *bytes = out;
        d
    } else {
        let fields = [Field { at: 0, width: Width::U64, name: "header_len".into() }];
        mutate_binary(rng, bytes, &fields)
    }
}


// ------------------------------------------------------------------ inputs

/// A set of files (name, bytes) written into one directory.
pub type Files = Vec<(String, Vec<u8>)>;

pub struct Base {
    pub files: Files,
    /// Field layouts for GGUF files (by file index).
    pub fields: Vec<Vec<Field>>,
}


/// Mutate one (sometimes two) of the files, each by its kind.
pub fn mutate_files(rng: &mut Rng, base: &Base) -> (Files, String) {
    let mut files = base.files.clone();
    let mut descs = Vec::new();
    let n = if files.len() > 1 && rng.chance(10) { 2 } else { 1 };
    for _ in 0..n {
        let i = rng.below(files.len());
        let (name, bytes) = &mut files[i];
        let d = if name.ends_with(".json") {
            mutate_json(rng, bytes)
        } else if name.ends_with(".safetensors") {
            mutate_safetensors(rng, bytes)
        } else {
            mutate_binary(rng, bytes, base.fields.get(i).map_or(&[][..], |f| f.as_slice()))
        };
        descs.push(format!("{name}: {d}"));
    }
    (files, descs.join(" | "))
}

// ------------------------------------------------------------------ the loop

pub enum Outcome {
    Ok,
    Err(String),
    Panic(String),
}

/// Open the input on a fresh thread (so a hang is a timeout, not a stuck test) with
/// allocation tracking on; returns the outcome and the largest single allocation.
pub fn run_case(open: Opener, target: PathBuf, desc: String) -> Option<(Outcome, usize)> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("fuzz-case".into())
        .spawn(move || {
            CASE.with(|c| c.set((desc.as_ptr(), desc.len())));
            LARGEST.with(|m| m.set(0));
            TRACKING.with(|t| t.set(true));
            let result = std::panic::catch_unwind(|| open(&target));
            TRACKING.with(|t| t.set(false));
            CASE.with(|c| c.set((std::ptr::null(), 0)));
            let largest = LARGEST.with(Cell::get);
            let outcome = match result {
                Ok(Ok(())) => Outcome::Ok,
                Ok(Err(msg)) => Outcome::Err(msg),
                Err(payload) => Outcome::Panic(
                    payload
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "(non-string panic payload)".into()),
                ),
            };
            let _ = tx.send((outcome, largest));
            drop(desc);
        })
        .expect("spawn fuzz case thread");
    rx.recv_timeout(CASE_TIMEOUT).ok()
}

pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| {
        let v = v.trim();
        v.strip_prefix("0x").map_or_else(|| v.parse().ok(), |h| u64::from_str_radix(h, 16).ok())
    })
}

struct Failure {
    seed: u64,
    what: String,
    desc: String,
    kept: PathBuf,
}

/// Fuzz one loader: `open` opens `target_name` (a file of the base, or "" for the
/// directory) and touches what a caller would; each case may allocate at most its input's
/// size plus `slack` at once.
pub fn fuzz(label: &str, open: Opener, target_name: &str, bases: Vec<Base>, slack: usize) {
    let max_cases = env_u64("KILN_FUZZ_CASES").unwrap_or(1500);
    let max_time = Duration::from_secs(env_u64("KILN_FUZZ_SECS").unwrap_or(20));
    let base_seed = env_u64("KILN_FUZZ_SEED").unwrap_or(0x6b69_6c6e_6675_7a7a) ^ fnv(label);
    let only = env_u64("KILN_FUZZ_CASE_SEED");

    let dir = tempdir();
    let target = if target_name.is_empty() { dir.path().to_path_buf() } else { dir.path().join(target_name) };
    let target_str = target.display().to_string();

    // The unmutated inputs must open.
    for (i, base) in bases.iter().enumerate() {
        write_files(dir.path(), &base.files);
        match run_case(open, target.clone(), format!("{label}: base {i}")) {
            Some((Outcome::Ok, _)) => {}
            Some((Outcome::Err(e), _)) => panic!("{label}: unmutated base {i} does not open: {e}"),
            Some((Outcome::Panic(p), _)) => panic!("{label}: unmutated base {i} panics: {p}"),
            None => panic!("{label}: unmutated base {i} timed out"),
        }
    }

    let start = Instant::now();
    let (mut cases, mut oks, mut errs, mut largest_seen, mut largest_ratio) = (0u64, 0u64, 0u64, 0usize, 0.0f64);
    let mut failures: Vec<Failure> = Vec::new();
    let mut timeouts = 0;
    while cases < max_cases && start.elapsed() < max_time && failures.len() < 10 && timeouts < 3 {
        let seed = only.unwrap_or_else(|| case_seed(base_seed, cases));
        cases += 1;
        let mut rng = Rng(seed);
        let base = &bases[rng.below(bases.len())];
        let (files, desc) = mutate_files(&mut rng, base);
        write_files(dir.path(), &files);
        let input_bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
        let limit = input_bytes + slack;
        let full_desc = format!("{label} case seed {seed:#018x}: {desc}");
        let fail = |what: String| {
            let kept = std::env::temp_dir().join(format!("kiln-fuzz-{label}-{seed:016x}"));
            let _ = std::fs::create_dir_all(&kept);
            write_files(&kept, &files);
            Failure { seed, what, desc: desc.clone(), kept }
        };
        match run_case(open, target.clone(), full_desc) {
            None => {
                timeouts += 1;
                failures.push(fail(format!("timed out ({} s)", CASE_TIMEOUT.as_secs())));
                continue;
            }
            Some((outcome, largest)) => {
                largest_seen = largest_seen.max(largest);
                largest_ratio = largest_ratio.max(largest as f64 / input_bytes.max(1) as f64);
                match outcome {
                    Outcome::Ok => oks += 1,
                    Outcome::Err(msg) => {
                        errs += 1;
                        if msg.trim().is_empty() || !msg.contains(&target_str) {
                            failures.push(fail(format!("error message does not name {target_str}: {msg:?}")));
                        }
                    }
                    Outcome::Panic(p) => failures.push(fail(format!("PANIC: {p}"))),
                }
                if largest > limit {
                    failures.push(fail(format!(
                        "largest single allocation {largest} bytes > input size {input_bytes} + {slack} slack"
                    )));
                }
            }
        }
        if only.is_some() {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "fuzz {label}: {cases} cases in {secs:.2} s ({oks} ok, {errs} err), largest single allocation while \
         opening {largest_seen} bytes (inputs ~{} bytes, limit input + {slack})",
        bases[0].files.iter().map(|(_, b)| b.len()).sum::<usize>()
    );
    let _ = largest_ratio;
    if !failures.is_empty() {
        let mut report = format!("fuzz {label}: {} failure(s) in {cases} cases:\n", failures.len());
        for f in &failures {
            report.push_str(&format!(
                "  - {}\n    seed {:#018x} (replay: KILN_FUZZ_CASE_SEED={:#x}), mutation: {}\n    inputs kept in {}\n",
                f.what,
                f.seed,
                f.seed,
                f.desc,
                f.kept.display()
            ));
        }
        panic!("{report}");
    }
}

pub fn write_files(dir: &Path, files: &Files) {
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).expect("write fuzz input");
    }
}

pub fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}
