//! The plan of a round: queued requests grouped by campaign with each user once, and the
//! round's answers fanned back out to every request.
use std::collections::HashSet;

use uuid::Uuid;

use super::round::{CampaignClaims, RoundResult};
use super::{ClaimOutcome, ClaimRefusal, Job};

/// The requests of one round, grouped by campaign in arrival order.
pub(super) struct RoundPlan {
    groups: Vec<(Uuid, Vec<Job>)>,
}

impl RoundPlan {
    pub(super) fn of(jobs: impl IntoIterator<Item = Job>) -> Self {
        let mut groups: Vec<(Uuid, Vec<Job>)> = Vec::new();
        for job in jobs {
            match groups.iter_mut().find(|(id, _)| *id == job.campaign_id) {
                Some((_, group)) => group.push(job),
                None => groups.push((job.campaign_id, vec![job])),
            }
        }
        Self { groups }
    }

    /// What the round must decide: per campaign, each user once, in arrival order.
    pub(super) fn claims(&self) -> Vec<CampaignClaims> {
        self.groups
            .iter()
            .map(|(campaign_id, jobs)| {
                let mut seen = HashSet::with_capacity(jobs.len());
                CampaignClaims {
                    campaign_id: *campaign_id,
                    users: jobs
                        .iter()
                        .filter(|job| seen.insert(&job.user))
                        .map(|job| job.user.clone())
                        .collect(),
                }
            })
            .collect()
    }

    /// How many requests the round serves.
    pub(super) fn request_count(&self) -> usize {
        self.groups.iter().map(|(_, jobs)| jobs.len()).sum()
    }

    /// The ids of the requests the round serves, for its log line.
    pub(super) fn request_ids(&self) -> Vec<&str> {
        self.groups
            .iter()
            .flat_map(|(_, jobs)| jobs.iter().map(|job| &*job.request_id))
            .collect()
    }

    /// Sends every request its answer: the first request of a user gets the new claim, its
    /// repeats in the round get replays of it. Returns, unanswered, the requests the round
    /// deferred (no answer, in a campaign it deferred).
    pub(super) fn answer(self, result: &RoundResult) -> Vec<Job> {
        let mut deferred = Vec::new();
        for (campaign_id, jobs) in self.groups {
            let campaign_deferred = result.deferred.contains(&campaign_id);
            let mut answered_new = HashSet::with_capacity(jobs.len());
            for job in jobs {
                let answer = match result.answers.get(&(campaign_id, job.user.clone())) {
                    Some(Ok(ClaimOutcome::Issued(claim)))
                        if answered_new.insert(job.user.clone()) =>
                    {
                        Ok(ClaimOutcome::Issued(claim.clone()))
                    }
                    Some(Ok(ClaimOutcome::Issued(claim) | ClaimOutcome::Replayed(claim))) => {
                        Ok(ClaimOutcome::Replayed(claim.clone()))
                    }
                    Some(Err(refusal)) => Err(refusal.clone()),
                    None if campaign_deferred => {
                        deferred.push(job);
                        continue;
                    }
                    None => {
                        tracing::error!(%campaign_id, "a claim round left a request unanswered");
                        Err(ClaimRefusal::Internal)
                    }
                };
                // A requester that gave up is not an error: a retry replays the committed claim.
                let _ = job.reply.send(answer);
            }
        }
        deferred
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, Utc};
    use tokio::sync::oneshot;

    use super::*;
    use crate::claim::IssuedClaim;
    use crate::domain::UserId;
    use crate::telemetry::RequestId;

    fn job(campaign_id: Uuid, user: &str) -> (Job, oneshot::Receiver<super::super::Answer>) {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            campaign_id,
            user: UserId::parse(user).unwrap(),
            request_id: RequestId::from("test"),
            reply,
            deferrals: 0,
        };
        (job, answer)
    }

    fn claim(campaign_id: Uuid, user: &str) -> IssuedClaim {
        IssuedClaim {
            claim_id: Uuid::now_v7(),
            campaign_id,
            user_id: user.to_owned(),
            code: format!("CODE-{user}"),
            issued_at: Utc::now(),
            day: NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
        }
    }

    #[test]
    fn requests_are_grouped_by_their_own_campaign_with_each_user_once() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let jobs = [
            job(a, "a1"),
            job(b, "b1"),
            job(a, "a2"),
            job(a, "a1"),
            job(b, "b2"),
        ];
        let plan = RoundPlan::of(jobs.into_iter().map(|(job, _)| job));
        let claims: Vec<(Uuid, Vec<String>)> = plan
            .claims()
            .into_iter()
            .map(|c| {
                (
                    c.campaign_id,
                    c.users.iter().map(|u| u.as_str().to_owned()).collect(),
                )
            })
            .collect();
        let owned = |users: &[&str]| users.iter().map(|u| u.to_string()).collect::<Vec<_>>();
        assert_eq!(
            claims,
            vec![(a, owned(&["a1", "a2"])), (b, owned(&["b1", "b2"]))]
        );
        assert_eq!(plan.request_count(), 5);
    }

    #[tokio::test]
    async fn a_users_repeat_gets_a_replay_and_only_unanswered_deferred_requests_come_back() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let (first, first_answer) = job(a, "u1");
        let (repeat, repeat_answer) = job(a, "u1");
        let (refused, refused_answer) = job(a, "u2");
        let (waiting, _) = job(b, "u3");
        let (replayed, replayed_answer) = job(b, "u4");
        let plan = RoundPlan::of([first, repeat, refused, waiting, replayed]);
        let issued = claim(a, "u1");
        let mut result = RoundResult::default();
        result.answers.insert(
            (a, UserId::parse("u1").unwrap()),
            Ok(ClaimOutcome::Issued(issued.clone())),
        );
        result.answers.insert(
            (a, UserId::parse("u2").unwrap()),
            Err(ClaimRefusal::OutOfStock),
        );
        let earlier = claim(b, "u4");
        result.answers.insert(
            (b, UserId::parse("u4").unwrap()),
            Ok(ClaimOutcome::Replayed(earlier.clone())),
        );
        result.deferred.push(b);
        let deferred = plan.answer(&result);
        assert_eq!(
            first_answer.await.unwrap(),
            Ok(ClaimOutcome::Issued(issued.clone()))
        );
        assert_eq!(
            repeat_answer.await.unwrap(),
            Ok(ClaimOutcome::Replayed(issued))
        );
        assert_eq!(refused_answer.await.unwrap(), Err(ClaimRefusal::OutOfStock));
        assert_eq!(
            replayed_answer.await.unwrap(),
            Ok(ClaimOutcome::Replayed(earlier)),
            "an answered user of a deferred campaign is answered"
        );
        assert_eq!(deferred.len(), 1);
        assert_eq!(deferred[0].user.as_str(), "u3");
    }

    #[tokio::test]
    async fn a_request_the_round_left_unanswered_is_an_internal_error() {
        let a = Uuid::new_v4();
        let (lost, lost_answer) = job(a, "u1");
        assert!(
            RoundPlan::of([lost])
                .answer(&RoundResult::default())
                .is_empty()
        );
        assert_eq!(lost_answer.await.unwrap(), Err(ClaimRefusal::Internal));
    }
}
