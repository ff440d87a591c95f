//! The async runtime openraft runs on: tokio, as [`openraft::TokioRuntime`].
//!
//! openraft draws each election timeout from its runtime's `thread_rng`. A
//! production build uses `TokioRuntime` itself. A test build uses
//! [`RaftRuntime`], the same tokio calls, whose random numbers come from a
//! seeded generator while the deterministic simulation has installed one
//! on the thread ([`seed_elections`]) — otherwise from `rand::thread_rng`
//! as in production. So a simulation seed decides every election timeout
//! and replays exactly, without patching openraft.

#[cfg(not(test))]
pub type RaftRuntime = openraft::TokioRuntime;

#[cfg(test)]
pub use seeded::{RaftRuntime, seed_elections};

#[cfg(test)]
mod seeded {
    use std::cell::RefCell;
    use std::future::Future;
    use std::time::Duration;

    use openraft::{AsyncRuntime, OptionalSend, TokioInstant, TokioRuntime};
    use rand::rngs::StdRng;
    use rand::{RngCore, SeedableRng};

    thread_local! {
        static SEEDED: RefCell<Option<StdRng>> = const { RefCell::new(None) };
    }

    /// Draws this thread's election timeouts from `seed` (`None`: from
    /// `rand::thread_rng` again).
    pub fn seed_elections(seed: Option<u64>) {
        SEEDED.with(|cell| *cell.borrow_mut() = seed.map(StdRng::seed_from_u64));
    }

    /// The thread's seeded generator when there is one.
    #[derive(Debug)]
    pub struct ElectionRng;

    impl ElectionRng {
        fn draw<T>(&mut self, draw: impl FnOnce(&mut dyn RngCore) -> T) -> T {
            SEEDED.with(|cell| match cell.borrow_mut().as_mut() {
                Some(seeded) => draw(seeded),
                None => draw(&mut rand::thread_rng()),
            })
        }
    }

    impl RngCore for ElectionRng {
        fn next_u32(&mut self) -> u32 {
            self.draw(|rng| rng.next_u32())
        }

        fn next_u64(&mut self) -> u64 {
            self.draw(|rng| rng.next_u64())
        }

        fn fill_bytes(&mut self, dest: &mut [u8]) {
            self.draw(|rng| rng.fill_bytes(dest))
        }

        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
            self.draw(|rng| rng.try_fill_bytes(dest))
        }
    }

    /// [`TokioRuntime`] with [`ElectionRng`].
    #[derive(Debug, Default, PartialEq, Eq)]
    pub struct RaftRuntime;

    impl AsyncRuntime for RaftRuntime {
        type JoinError = <TokioRuntime as AsyncRuntime>::JoinError;
        type JoinHandle<T: OptionalSend + 'static> = <TokioRuntime as AsyncRuntime>::JoinHandle<T>;
        type Sleep = <TokioRuntime as AsyncRuntime>::Sleep;
        type Instant = TokioInstant;
        type TimeoutError = <TokioRuntime as AsyncRuntime>::TimeoutError;
        type Timeout<R, T: Future<Output = R> + OptionalSend> =
            <TokioRuntime as AsyncRuntime>::Timeout<R, T>;
        type ThreadLocalRng = ElectionRng;
        type OneshotSender<T: OptionalSend> = <TokioRuntime as AsyncRuntime>::OneshotSender<T>;
        type OneshotReceiverError = <TokioRuntime as AsyncRuntime>::OneshotReceiverError;
        type OneshotReceiver<T: OptionalSend> = <TokioRuntime as AsyncRuntime>::OneshotReceiver<T>;

        fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
        where
            T: Future + OptionalSend + 'static,
            T::Output: OptionalSend + 'static,
        {
            TokioRuntime::spawn(future)
        }

        fn sleep(duration: Duration) -> Self::Sleep {
            TokioRuntime::sleep(duration)
        }

        fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
            TokioRuntime::sleep_until(deadline)
        }

        fn timeout<R, F: Future<Output = R> + OptionalSend>(
            duration: Duration,
            future: F,
        ) -> Self::Timeout<R, F> {
            TokioRuntime::timeout(duration, future)
        }

        fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
            deadline: Self::Instant,
            future: F,
        ) -> Self::Timeout<R, F> {
            TokioRuntime::timeout_at(deadline, future)
        }

        fn is_panic(join_error: &Self::JoinError) -> bool {
            TokioRuntime::is_panic(join_error)
        }

        fn thread_rng() -> Self::ThreadLocalRng {
            ElectionRng
        }

        fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
        where
            T: OptionalSend,
        {
            TokioRuntime::oneshot()
        }
    }
}
