//! A job's quota hold through the job store: its running slot is freed and
//! its held cost settled exactly once when it ends (jobs sit above billing,
//! so this test lives here).

use crate::billing::quotas::tests::{NOW, charge, counter, quota, submit};
use crate::billing::quotas::{QuotaAction, QuotaType, Scope};
use crate::jobs::record::JobStatus;
use crate::jobs::store::JobStore;
use crate::kernel::kv::MemoryKv;

#[test]
fn a_job_frees_its_running_slot_once_when_it_ends() {
    let kv = MemoryKv::default();
    quota(
        &kv,
        QuotaType::ConcurrentJobs,
        1.0,
        QuotaAction::Block,
        Scope::Global,
    );
    let a = charge("a", Some(3), None);
    let (hold, _) = submit(&kv, &a, 2.0).unwrap();
    let store = JobStore::new(&kv);
    let mut job = crate::jobs::store::tests::job("j", "a");
    job.quota_hold = Some(hold);
    job.team_id = Some(3);
    store.create(&mut job).unwrap();
    assert!(submit(&kv, &a, 0.0).is_err(), "the slot is taken");
    for status in [
        JobStatus::Running,
        JobStatus::Completed,
        JobStatus::Completed,
    ] {
        store
            .update::<()>("j", |j| {
                j.cost_usd = Some(1.25);
                let _ = j.transition(status, NOW);
                Ok(())
            })
            .unwrap();
    }
    for scope in [Scope::User("a".into()), Scope::Team(3)] {
        assert_eq!(
            counter(&kv, QuotaType::ConcurrentJobs, &scope),
            0,
            "{scope:?}"
        );
        assert_eq!(counter(&kv, QuotaType::CostMonthly, &scope), 1_250_000);
    }
    submit(&kv, &a, 0.0).unwrap();
}
