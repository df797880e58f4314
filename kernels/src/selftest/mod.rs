//! Named self-test cases: every kernel × dtype × edge shape against its CPU twin, on
//! whatever [`Device`] they are given — what `kiln selftest` runs on the user's adapter,
//! in the spirit of llama.cpp's `test-backend-ops`.
//!
//! A [`Case`] is a name and a closure; its data is made from a seed derived from the name,
//! so a case computes the same numbers whichever subset runs. Running one fills
//! [`Checks`]: float outputs are compared with [`tolerance::compare`] (the kernel tests'
//! rule, with the tolerances of [`crate::tolerance`] times [`Settings::tolerance_scale`]),
//! ids and kept sets exactly. A case that cannot run on this adapter (a tensor beyond its
//! binding limit) is skipped with the reason, never passed.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use kiln_tensor::{Device, TensorError};

use crate::testing::Rng;
use crate::tolerance::{self, Tol};

mod attention;
mod choice;
mod linear;
mod pointwise;
pub mod weights;

/// How the comparisons are made.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Multiplies every float tolerance (1 = the kernel tests' tolerances; 0 demands
    /// bit-exact agreement with the f64 twins, which real kernels do not reach).
    pub tolerance_scale: f32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { tolerance_scale: 1.0 }
    }
}

/// Why a case stopped before finishing its checks.
#[derive(Debug)]
pub enum Stop {
    /// This adapter cannot run the case (the reason says which limit or feature).
    Skip(String),
    /// A launcher refused or a GPU operation failed: the case fails with this message.
    Error(String),
}

impl From<TensorError> for Stop {
    /// A tensor beyond the adapter's binding limit is a skip (this adapter cannot hold
    /// it); any other launcher or GPU error fails the case.
    fn from(e: TensorError) -> Self {
        match e {
            TensorError::TooLarge { .. } => Stop::Skip(e.to_string()),
            other => Stop::Error(other.to_string()),
        }
    }
}

/// What a case's closure returns.
pub type CaseResult = std::result::Result<(), Stop>;

type RunFn = Box<dyn Fn(&Device, &mut Checks) -> CaseResult + Send + Sync>;

/// One named self-test.
pub struct Case {
    /// The name `kiln selftest` prints and filters on.
    pub name: String,
    run: RunFn,
}

impl Case {
    /// A case named `name` that runs `run`.
    pub fn new(
        name: impl Into<String>,
        run: impl Fn(&Device, &mut Checks) -> CaseResult + Send + Sync + 'static,
    ) -> Case {
        Case { name: name.into(), run: Box::new(run) }
    }

    /// The seeded generator of this case's data (FNV-1a of its name).
    pub fn rng(name: &str) -> Rng {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        Rng::new(h)
    }

    /// Run the case on `dev`; a panic inside (a CPU twin's assertion, a wgpu validation
    /// error) counts as a failure with its message.
    pub fn run(&self, dev: &Device, settings: Settings) -> Outcome {
        let start = Instant::now();
        let mut checks = Checks::new(settings);
        let result = catch_unwind(AssertUnwindSafe(|| (self.run)(dev, &mut checks)));
        let status = match result {
            Ok(Ok(())) if checks.failures.is_empty() => Status::Pass,
            Ok(Ok(())) => Status::Fail(checks.failures.join("; ")),
            Ok(Err(Stop::Skip(why))) => Status::Skip(why),
            Ok(Err(Stop::Error(msg))) => Status::Fail(msg),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panicked".into());
                Status::Fail(format!("panicked: {msg}"))
            }
        };
        Outcome { name: self.name.clone(), status, checks, elapsed: start.elapsed() }
    }
}

/// Pass, fail (with what went wrong) or skip (with why).
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// Every check passed.
    Pass,
    /// A check failed, a launcher or GPU operation failed, or the case panicked; holds the
    /// messages.
    Fail(String),
    /// The adapter cannot run the case; holds why.
    Skip(String),
}

/// A finished case.
pub struct Outcome {
    /// The case's name.
    pub name: String,
    /// Pass, fail or skip.
    pub status: Status,
    /// What the case compared.
    pub checks: Checks,
    /// Wall time of the case.
    pub elapsed: Duration,
}

/// What a case compared, accumulated over all its comparisons.
#[derive(Clone, Debug)]
pub struct Checks {
    settings: Settings,
    /// Largest |got − want| over the float comparisons.
    pub max_abs: f32,
    /// Largest |got − want| / |want| (want ≠ 0).
    pub max_rel: f32,
    /// Largest |got − want| / (abs + rel·|want|): ≤ 1 passes, so it reads as "this share
    /// of the tolerance was used". NaN when no float comparison ran.
    pub worst: f32,
    /// The (scaled) tolerance of the comparison that produced `worst`.
    pub tol: Option<Tol>,
    /// Values compared exactly (ids, ranks, kept flags) and how many differed.
    pub exact_total: usize,
    /// How many of those exactly compared values differed.
    pub exact_mismatches: usize,
    /// One message per failed comparison.
    pub failures: Vec<String>,
}

impl Checks {
    fn new(settings: Settings) -> Checks {
        Checks {
            settings,
            max_abs: 0.0,
            max_rel: 0.0,
            worst: f32::NAN,
            tol: None,
            exact_total: 0,
            exact_mismatches: 0,
            failures: Vec::new(),
        }
    }

    /// `tol` scaled by the settings.
    pub fn scaled(&self, tol: Tol) -> Tol {
        let s = self.settings.tolerance_scale;
        Tol { abs: tol.abs * s, rel: tol.rel * s }
    }

    /// Compare floats with [`tolerance::compare`] at the scaled `tol`.
    pub fn close(&mut self, what: &str, got: &[f32], want: &[f32], tol: Tol) {
        let tol = self.scaled(tol);
        if let Err(msg) = tolerance::compare(what, got, want, tol) {
            self.failures.push(msg);
        }
        for (&g, &w) in got.iter().zip(want) {
            if !(g.is_finite() && w.is_finite()) {
                continue;
            }
            let err = (g - w).abs();
            self.max_abs = self.max_abs.max(err);
            if w != 0.0 {
                self.max_rel = self.max_rel.max(err / w.abs());
            }
            let allowed = tol.abs + tol.rel * w.abs();
            let share = if allowed > 0.0 {
                err / allowed
            } else if err > 0.0 {
                f32::INFINITY
            } else {
                0.0
            };
            if self.worst.is_nan() || share > self.worst {
                self.worst = share;
                self.tol = Some(tol);
            }
        }
        if self.tol.is_none() {
            self.tol = Some(tol);
            self.worst = 0.0;
        }
    }

    /// Compare integers exactly.
    pub fn exact(&mut self, what: &str, got: &[u32], want: &[u32]) {
        self.exact_total += want.len().max(got.len());
        self.exact_mismatches += got.iter().zip(want).filter(|(g, w)| g != w).count() + got.len().abs_diff(want.len());
        if let Err(msg) = tolerance::compare_u32(what, got, want) {
            self.failures.push(msg);
        }
    }

    /// Compare flags (kept sets) exactly; the message lists the first differing indices.
    pub fn exact_flags(&mut self, what: &str, got: &[bool], want: &[bool]) {
        let differ: Vec<usize> = (0..want.len().max(got.len())).filter(|&i| got.get(i) != want.get(i)).collect();
        self.exact_total += want.len().max(got.len());
        self.exact_mismatches += differ.len();
        if !differ.is_empty() {
            let count = |v: &[bool]| v.iter().filter(|&&b| b).count();
            self.failures.push(format!(
                "{what}: {} differ, first at {:?} (GPU keeps {}, twin {})",
                differ.len(),
                &differ[..differ.len().min(8)],
                count(got),
                count(want)
            ));
        }
    }

    /// Record a failed condition that is not a plain comparison.
    pub fn fail(&mut self, msg: String) {
        self.failures.push(msg);
    }
}

/// Every kernel case, in a fixed order.
pub fn kernel_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    pointwise::cases(&mut cases);
    linear::cases(&mut cases);
    attention::cases(&mut cases);
    choice::cases(&mut cases);
    cases
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reports_the_share_of_the_tolerance_and_fails_beyond_it() {
        let tol = Tol { abs: 1e-3, rel: 0.0 };
        let mut c = Checks::new(Settings::default());
        c.close("small", &[1.0, 2.0005], &[1.0, 2.0], tol);
        assert!(c.failures.is_empty());
        assert!((c.worst - 0.5).abs() < 0.01, "{}", c.worst);
        c.close("large", &[3.01], &[3.0], tol);
        assert_eq!(c.failures.len(), 1);
        assert!(c.failures[0].contains("large") && c.failures[0].contains("first bad index 0"), "{:?}", c.failures);
        assert!(c.worst > 9.0 && (c.max_abs - 0.01).abs() < 1e-3);
    }

    #[test]
    fn zero_scale_demands_bit_equality() {
        let tol = Tol { abs: 1e-3, rel: 1e-3 };
        let mut c = Checks::new(Settings { tolerance_scale: 0.0 });
        c.close("equal", &[1.0, f32::NEG_INFINITY], &[1.0, f32::NEG_INFINITY], tol);
        assert!(c.failures.is_empty(), "{:?}", c.failures);
        assert_eq!(c.worst, 0.0);
        c.close("one ulp", &[1.0 + f32::EPSILON], &[1.0], tol);
        assert_eq!(c.failures.len(), 1);
        assert!(c.worst.is_infinite());
    }

    #[test]
    fn exact_comparisons_count_mismatches() {
        let mut c = Checks::new(Settings::default());
        c.exact("ids", &[1, 2, 3], &[1, 2, 3]);
        assert!(c.failures.is_empty());
        c.exact("ids", &[1, 5], &[1, 2, 3]);
        assert_eq!((c.exact_total, c.exact_mismatches), (6, 2));
        c.exact_flags("kept", &[true, false], &[true, true]);
        assert_eq!((c.exact_total, c.exact_mismatches), (8, 3));
        assert_eq!(c.failures.len(), 2);
        assert!(c.failures[1].contains("kept") && c.failures[1].contains("[1]"), "{:?}", c.failures);
    }

    #[test]
    fn over_the_binding_limit_is_a_skip_and_other_errors_fail() {
        let too_large = TensorError::TooLarge {
            what: "w".into(),
            bytes: 2,
            limit: 1,
            limit_name: "max_storage_buffer_binding_size",
        };
        assert!(matches!(Stop::from(too_large), Stop::Skip(m) if m.contains("max_storage_buffer_binding_size")));
        assert!(matches!(Stop::from(TensorError::param("k", "bad")), Stop::Error(m) if m.contains("bad")));
    }

    #[test]
    fn case_names_are_unique_and_seeds_depend_only_on_the_name() {
        let cases = kernel_cases();
        let mut names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "duplicate case names");
        assert_eq!(Case::rng("matvec/f32/m1/n1/k1").next_u64(), Case::rng("matvec/f32/m1/n1/k1").next_u64());
        assert_ne!(Case::rng("a").next_u64(), Case::rng("b").next_u64());
    }

    #[test]
    fn a_panicking_case_fails_with_its_message() {
        let dev = crate::testing::test_device();
        let case = Case::new("panics", |_, _| panic!("twin assertion"));
        let out = case.run(&dev, Settings::default());
        assert!(matches!(&out.status, Status::Fail(m) if m.contains("twin assertion")), "{:?}", out.status);
        let case = Case::new("skips", |_, _| Err(Stop::Skip("no feature".into())));
        assert_eq!(case.run(&dev, Settings::default()).status, Status::Skip("no feature".into()));
        let case = Case::new("fails", |_, c| {
            c.fail("wrong".into());
            Ok(())
        });
        assert_eq!(case.run(&dev, Settings::default()).status, Status::Fail("wrong".into()));
    }
}
