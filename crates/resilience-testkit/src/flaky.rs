//! A scriptable flaky async service: the upstream that tests and examples put resilience
//! patterns in front of.
//!
//! The script decides each call's fate when the call *starts*, from its 1-based call number:
//! it fails if it is among the first `fail_first` calls, if [`Flaky::set_failing`] is on, or
//! if the random generator says so. One random number is drawn for every call, whatever the
//! other rules decide, so call n's random fate depends only on the generator's seed value and n: changing
//! `fail_first` or toggling `set_failing` never shifts the random sequence of later calls.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

/// The seed used when the builder is given none, so that an unseeded script is still
/// reproducible from run to run.
const DEFAULT_SEED: u64 = 0x5EED;

/// A flaky service with a scripted pass/fail sequence and latency.
///
/// Clones share one call counter and one script, so a clone handed to a retry layer and the
/// original kept by the test see the same calls.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use resilience_testkit::{Flaky, FlakyError};
///
/// let upstream = Flaky::builder().fail_first(2).build();
/// assert_eq!(upstream.call().await, Err(FlakyError::new(1)));
/// assert_eq!(upstream.call().await, Err(FlakyError::new(2)));
/// assert_eq!(upstream.call().await, Ok(3));
/// assert_eq!((upstream.calls(), upstream.failures(), upstream.successes()), (3, 2, 1));
/// # }
/// ```
///
/// It is also a `tower_service::Service<R>` that echoes the request. Because the inherent
/// [`call`](Flaky::call) takes no request, write `Service::call(&mut flaky, req)` (or go through
/// `ServiceExt`) rather than `flaky.call(req)`.
#[derive(Debug, Clone)]
pub struct Flaky {
    inner: Arc<Mutex<Script>>,
}

/// The shared state. A std `Mutex` because every critical section is a few field updates and
/// is never held across an `.await` (the latency sleep happens after the lock is released).
#[derive(Debug)]
struct Script {
    fail_first: u64,
    probability: f64,
    rng: fastrand::Rng,
    latency: Duration,
    failing: bool,
    calls: u64,
    failures: u64,
    successes: u64,
}

impl Flaky {
    /// Starts a script: by default every call succeeds at once.
    pub fn builder() -> FlakyBuilder {
        FlakyBuilder::default()
    }

    /// Makes one call: waits the current latency, then returns the 1-based call number, or a
    /// [`FlakyError`] carrying it if the script says this call fails.
    ///
    /// A call dropped during its latency counts in [`calls`](Self::calls) but in neither
    /// [`failures`](Self::failures) nor [`successes`](Self::successes).
    ///
    /// # Errors
    ///
    /// When the script fails this call (see the [module docs](crate::flaky)).
    pub async fn call(&self) -> Result<u64, FlakyError> {
        let (call, fails, latency) = {
            let mut script = self.lock();
            script.calls += 1;
            let call = script.calls;
            // Drawn unconditionally, see the module docs.
            let unlucky = script.rng.f64() < script.probability;
            let fails = call <= script.fail_first || script.failing || unlucky;
            (call, fails, script.latency)
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let mut script = self.lock();
        if fails {
            script.failures += 1;
            Err(FlakyError::new(call))
        } else {
            script.successes += 1;
            Ok(call)
        }
    }

    /// While `true`, every call that starts fails; calls already started keep their fate.
    pub fn set_failing(&self, failing: bool) {
        self.lock().failing = failing;
    }

    /// Changes the latency of calls that start from now on.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// How many calls have started.
    pub fn calls(&self) -> u64 {
        self.lock().calls
    }

    /// How many calls have completed with an error.
    pub fn failures(&self) -> u64 {
        self.lock().failures
    }

    /// How many calls have completed successfully.
    pub fn successes(&self) -> u64 {
        self.lock().successes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Script> {
        // A panic while holding the lock cannot leave the counters half-updated in a way that
        // matters to a test, so a poisoned lock is used as is.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<R> tower_service::Service<R> for Flaky
where
    R: Send + 'static,
{
    type Response = R;
    type Error = FlakyError;
    // Boxed for simplicity: this is a test helper, an allocation per call does not matter.
    type Future = Pin<Box<dyn Future<Output = Result<R, FlakyError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Always ready: a flaky upstream fails calls, it does not apply backpressure.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: R) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Self::call(&this).await.map(|_| request) })
    }
}

/// Builds a [`Flaky`]; see [`Flaky::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct FlakyBuilder {
    fail_first: u64,
    probability: f64,
    seed: u64,
    latency: Duration,
}

impl Default for FlakyBuilder {
    fn default() -> Self {
        Self {
            fail_first: 0,
            probability: 0.0,
            seed: DEFAULT_SEED,
            latency: Duration::ZERO,
        }
    }
}

impl FlakyBuilder {
    /// The first `n` calls fail.
    pub fn fail_first(mut self, n: u64) -> Self {
        self.fail_first = n;
        self
    }

    /// Each call fails with probability `p`, drawn from a generator seeded with
    /// [`seed`](Self::seed): `0.0` never fails, `1.0` always does.
    ///
    /// # Panics
    ///
    /// If `p` is not within `0.0..=1.0` (a mistake in the test, better reported at once).
    pub fn fail_with_probability(mut self, p: f64) -> Self {
        assert!(
            (0.0..=1.0).contains(&p),
            "failure probability must be within 0.0..=1.0, got {p}"
        );
        self.probability = p;
        self
    }

    /// Seeds the failure generator: the same seed gives the same pass/fail sequence.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Each call sleeps this long (`tokio::time::sleep`, so paused-time tests control it).
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Builds the service.
    pub fn build(self) -> Flaky {
        Flaky {
            inner: Arc::new(Mutex::new(Script {
                fail_first: self.fail_first,
                probability: self.probability,
                rng: fastrand::Rng::with_seed(self.seed),
                latency: self.latency,
                failing: false,
                calls: 0,
                failures: 0,
                successes: 0,
            })),
        }
    }
}

/// The error of a failed [`Flaky`] call, carrying its 1-based call number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlakyError {
    call: u64,
}

impl FlakyError {
    /// The error of call number `call`, e.g. to compare against in a test.
    pub fn new(call: u64) -> Self {
        Self { call }
    }

    /// The 1-based number of the call that failed.
    pub fn call(&self) -> u64 {
        self.call
    }
}

impl fmt::Display for FlakyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "flaky call {} failed", self.call)
    }
}

impl std::error::Error for FlakyError {}
