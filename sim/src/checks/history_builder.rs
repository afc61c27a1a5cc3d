//! A terse builder of hand-made histories for the checkers' self-tests.

use crate::history::{AcquireResult, Ev, ModeKind, Record};

/// Builds histories tersely.
#[derive(Default)]
pub(super) struct H {
    r: Vec<Record>,
    op: u64,
}

impl H {
    pub(super) fn ev(&mut self, t: u64, ev: Ev) -> &mut Self {
        self.r.push(Record { t, ev });
        self
    }

    /// An acquire invoked at `inv`, granted `token` at `ret`, with the
    /// holder's lease deadline `deadline` at that moment.
    #[allow(clippy::too_many_arguments)] // one call per line reads like a table
    pub(super) fn grant(
        &mut self,
        session: u64,
        lock: &str,
        mode: ModeKind,
        inv: u64,
        ret: u64,
        token: u64,
        deadline: u64,
    ) -> &mut Self {
        let result = AcquireResult::Granted { token };
        self.acquire(session, lock, mode, (inv, ret), result, Some(deadline))
    }

    pub(super) fn release(&mut self, t: u64, session: u64, lock: &str, token: u64) -> &mut Self {
        self.ev(
            t,
            Ev::ReleaseInvoke {
                session,
                lock: lock.to_owned(),
                token,
            },
        )
    }

    pub(super) fn write(
        &mut self,
        t: u64,
        session: u64,
        lock: &str,
        token: u64,
        accepted: bool,
    ) -> &mut Self {
        self.ev(
            t,
            Ev::Write {
                client: session,
                session,
                lock: lock.to_owned(),
                token,
                accepted,
            },
        )
    }

    /// An acquire of `lock` invoked at `inv`, answered `result` at `ret`.
    pub(super) fn acquire(
        &mut self,
        session: u64,
        lock: &str,
        mode: ModeKind,
        (inv, ret): (u64, u64),
        result: AcquireResult,
        deadline: Option<u64>,
    ) -> &mut Self {
        self.op += 1;
        let op = self.op;
        self.ev(
            inv,
            Ev::AcquireInvoke {
                op,
                client: session,
                session,
                lock: lock.to_owned(),
                mode,
            },
        );
        self.ev(
            ret,
            Ev::AcquireReturn {
                op,
                result,
                deadline,
            },
        )
    }

    /// A grant of `token` of lock `L` over `(inv, ret)`; the holder then
    /// believes its lease runs until `deadline`.
    pub(super) fn l_grant(
        &mut self,
        session: u64,
        mode: ModeKind,
        span: (u64, u64),
        token: u64,
        deadline: u64,
    ) -> &mut Self {
        let result = AcquireResult::Granted { token };
        self.acquire(session, "L", mode, span, result, Some(deadline))
    }

    pub(super) fn l_release(&mut self, t: u64, session: u64, token: u64) -> &mut Self {
        self.ev(
            t,
            Ev::ReleaseInvoke {
                session,
                lock: "L".to_owned(),
                token,
            },
        )
    }

    pub(super) fn sorted(&mut self) -> Vec<Record> {
        let mut r = self.r.clone();
        r.sort_by_key(|r| r.t);
        r
    }
}
