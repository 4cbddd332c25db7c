//! The review workflow: storing scans, auto-rules, every transition (allowed or refused), undo,
//! exclusions, and a complete audit log after a sequence of actions.

#![allow(clippy::unwrap_used)]

#[path = "support/rights_fixture.rs"]
mod fixture;

use std::fmt::Write as _;

use aniprint::Error;
use aniprint::catalog::date::utc_iso;
use aniprint::catalog::{
    Band, Catalog, MatchFilter, MatchRegion, MatchStatus, PieceStatus, Stem, TargetKind,
};
use aniprint::review::{self, Decision, ReviewConfig};
use aniprint::units::Seconds;
use fixture::{EP01, EP02, MIN, NOW};

/// A catalog with one upload and one pending match (no auto-rules); returns the match id.
fn one_pending() -> (tempfile::TempDir, Catalog, String) {
    let (d, cat) = fixture::catalog();
    let up = fixture::upload('a', 60.0, NOW);
    let r = fixture::region(&up, Stem::Mix, EP01, 0.0, (30.0, 50.0), 0.7, Band::Medium);
    cat.put_scan(&up, &[r], &ReviewConfig::none(), NOW).unwrap();
    let id = cat.matches(&MatchFilter::default()).unwrap()[0].id.clone();
    (d, cat, id)
}

fn decision(to: MatchStatus) -> Decision {
    let reason = match to {
        MatchStatus::Dismissed => Some("false_positive".to_string()),
        MatchStatus::Disputed => Some("fair_use".to_string()),
        _ => None,
    };
    Decision { reason, ..Decision::default() }
}

fn set(cat: &Catalog, id: &str, to: MatchStatus, at: u64) -> aniprint::Result<MatchRegion> {
    review::set_status(cat, &ReviewConfig::default(), id, to, decision(to), "rev", at)
}

/// A path of allowed transitions from pending to `target`.
fn path_to(target: MatchStatus) -> &'static [MatchStatus] {
    use MatchStatus::*;
    match target {
        Pending => &[],
        Confirmed => &[Confirmed],
        Dismissed => &[Dismissed],
        Disputed => &[Confirmed, Disputed],
        Escalated => &[Confirmed, Disputed, Escalated],
    }
}

#[test]
fn every_transition_is_allowed_or_refused_as_the_workflow_says() {
    use MatchStatus::*;
    let expected: &[(MatchStatus, &[MatchStatus])] = &[
        (Pending, &[Confirmed, Dismissed]),
        (Confirmed, &[Disputed, Dismissed]),
        (Dismissed, &[Pending]),
        (Disputed, &[Confirmed, Dismissed, Escalated]),
        (Escalated, &[]),
    ];
    for (from, allowed) in expected {
        assert_eq!(from.next(), *allowed);
        for to in MatchStatus::ALL {
            let (_d, cat, id) = one_pending();
            for (i, step) in path_to(*from).iter().enumerate() {
                set(&cat, &id, *step, NOW + i as u64 + 1).unwrap();
            }
            let before = (cat.match_(&id).unwrap(), cat.audit_log().unwrap());
            assert_eq!(before.0.status, *from);
            let got = set(&cat, &id, to, NOW + 10);
            if allowed.contains(&to) {
                assert_eq!(got.unwrap().status, to, "{from} -> {to}");
                assert_eq!(cat.audit_log().unwrap().len(), before.1.len() + 1);
            } else {
                let err = got.unwrap_err();
                assert!(
                    matches!(&err, Error::InvalidTransition { from: f, to: t, .. }
                        if f == from.as_str() && t == to.as_str()),
                    "{from} -> {to}: {err}"
                );
                // Refused: nothing changed, nothing audited.
                assert_eq!((cat.match_(&id).unwrap(), cat.audit_log().unwrap()), before);
            }
        }
    }
    let (_d, cat, id) = one_pending();
    let err = set(&cat, &id, Disputed, NOW).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "match {id}: cannot go from pending to disputed \
             (allowed from pending: confirmed, dismissed)"
        )
    );
}

#[test]
fn reasons_deadlines_and_exclude_are_checked() {
    let (_d, cat, id) = one_pending();
    let cfg = ReviewConfig::default();
    let bad = |d: Decision, to: MatchStatus| {
        review::set_status(&cat, &cfg, &id, to, d, "rev", NOW).unwrap_err().to_string()
    };
    let e = bad(
        Decision { reason: Some("fair_use".into()), ..Decision::default() },
        MatchStatus::Dismissed,
    );
    assert!(e.contains("false_positive"), "{e}");
    let e = bad(Decision { exclude: true, ..Decision::default() }, MatchStatus::Confirmed);
    assert!(e.contains("--exclude"), "{e}");
    let e = bad(Decision { deadline_ms: Some(NOW), ..Decision::default() }, MatchStatus::Confirmed);
    assert!(e.contains("--deadline"), "{e}");
    set(&cat, &id, MatchStatus::Confirmed, NOW).unwrap();
    let e = bad(Decision::default(), MatchStatus::Disputed);
    assert!(e.contains("dispute needs --reason"), "{e}");
    let m = set(&cat, &id, MatchStatus::Disputed, NOW).unwrap();
    let deadline = m.review.unwrap().deadline_ms.unwrap();
    assert_eq!(utc_iso(deadline), "2024-05-31T23:59:59Z");
    assert!(cat.audit_log().unwrap().len() == 2);
}

#[test]
fn put_scan_replaces_pending_keeps_reviewed_and_applies_rules() {
    let (_d, cat) = fixture::catalog();
    let up = fixture::upload('b', 120.0, NOW);
    let cfg = ReviewConfig::default();
    let long_high = fixture::region(&up, Stem::Mix, EP01, 0.0, (10.0, 50.0), 0.95, Band::High);
    let short_high =
        fixture::region(&up, Stem::Voice, EP01, 60.0, (100.0, 120.0), 0.95, Band::High);
    let long_medium =
        fixture::region(&up, Stem::Background, EP02, 80.0, (0.0, 40.0), 0.7, Band::Medium);
    let first = cat
        .put_scan(&up, &[long_high.clone(), short_high.clone(), long_medium.clone()], &cfg, NOW)
        .unwrap();
    assert_eq!(first.stored, 3);
    assert_eq!(first.auto_reviewed.len(), 1);
    let all = cat.matches(&MatchFilter::default()).unwrap();
    let status = |stem: Stem| all.iter().find(|m| m.stem == stem).unwrap().clone();
    let auto = status(Stem::Mix);
    assert_eq!(
        (auto.status, auto.rule.as_deref()),
        (MatchStatus::Confirmed, Some("auto:high_long"))
    );
    assert_eq!(status(Stem::Voice).status, MatchStatus::Pending);
    assert_eq!(status(Stem::Background).status, MatchStatus::Pending);
    assert_eq!(auto.id, long_high.computed_id());

    // The reviewer dismisses the voice match; a rescan finds the voice and background regions
    // again (a little shifted) plus a new one.
    let voice = status(Stem::Voice).id;
    set(&cat, &voice, MatchStatus::Dismissed, NOW + MIN).unwrap();
    let mut shifted = short_high.clone();
    shifted.upload_start.0 += 0.2;
    shifted.upload_end.0 += 0.2;
    shifted.score = 0.99;
    let new = fixture::region(&up, Stem::Mix, EP02, 100.0, (200.0, 210.0), 0.6, Band::Low);
    // The confirmed mix found again with its ends moved 0.6 s: its id's whole seconds change
    // (10.0 -> 10.6 rounds to 11), but it is the same reuse, not a new pending match.
    let moved = fixture::region(&up, Stem::Mix, EP01, 0.6, (10.6, 50.4), 0.93, Band::High);
    assert_ne!(moved.computed_id(), long_high.computed_id());
    let second = cat
        .put_scan(
            &up,
            &[shifted, long_medium, new, moved, long_high],
            &ReviewConfig::none(),
            NOW + 2 * MIN,
        )
        .unwrap();
    // Pending background replaced; dismissed voice and auto-confirmed mix (twice: found at
    // its id and moved) kept as reviewed.
    assert_eq!((second.replaced, second.kept_reviewed, second.stored), (1, 3, 2));
    let after = cat.matches(&MatchFilter::default()).unwrap();
    assert_eq!(after.len(), 4);
    let kept = cat.match_(&voice).unwrap();
    assert_eq!((kept.status, kept.score), (MatchStatus::Dismissed, 0.95));
    let pending = cat
        .matches(&MatchFilter { statuses: vec![MatchStatus::Pending], ..MatchFilter::default() })
        .unwrap();
    assert_eq!(pending.len(), 2);
    assert!(pending.iter().all(|m| m.created_ms == NOW + 2 * MIN));
    let by_series = MatchFilter { series: Some("Other".into()), ..MatchFilter::default() };
    assert!(cat.matches(&by_series).unwrap().is_empty());
    assert_eq!(cat.upload(&up.id).unwrap().scanned_ms, NOW);
}

#[test]
fn a_rescan_does_not_decide_again_what_a_reviewer_put_back() {
    let (_d, cat) = fixture::catalog();
    let up = fixture::upload('r', 120.0, NOW);
    let cfg = ReviewConfig::default();
    let long_high = fixture::region(&up, Stem::Mix, EP01, 0.0, (10.0, 50.0), 0.95, Band::High);
    let first = cat.put_scan(&up, std::slice::from_ref(&long_high), &cfg, NOW).unwrap();
    assert_eq!(first.auto_reviewed.len(), 1);
    let id = long_high.computed_id();
    review::undo(&cat, &id, "rev", Some("not ours to claim"), NOW + 1).unwrap();
    assert_eq!(cat.match_(&id).unwrap().status, MatchStatus::Pending);
    let again = cat.put_scan(&up, &[long_high], &cfg, NOW + 2).unwrap();
    assert!(again.auto_reviewed.is_empty(), "{again:?}");
    assert_eq!(cat.match_(&id).unwrap().status, MatchStatus::Pending);
}

#[test]
fn dismissal_with_exclude_stops_later_matches_and_undo_lifts_it() {
    let (_d, cat, id) = one_pending();
    let cfg = ReviewConfig::default();
    let d = Decision { reason: Some("licensed".into()), exclude: true, ..Decision::default() };
    review::set_status(&cat, &cfg, &id, MatchStatus::Dismissed, d, "rev", NOW + 1).unwrap();
    assert_eq!(cat.exclusions().unwrap().len(), 1);
    // 30..50 excluded: a range mostly inside is excluded, one mostly outside is not.
    assert!(cat.is_excluded(EP01, Seconds(32.0), Seconds(52.0)).unwrap());
    assert!(!cat.is_excluded(EP01, Seconds(45.0), Seconds(70.0)).unwrap());
    assert!(!cat.is_excluded(EP02, Seconds(30.0), Seconds(50.0)).unwrap());

    // Another upload reusing the same range is dropped by put_scan.
    let up2 = fixture::upload('c', 60.0, NOW);
    let r = fixture::region(&up2, Stem::Voice, EP01, 5.0, (31.0, 49.0), 0.9, Band::High);
    let stored = cat.put_scan(&up2, &[r], &ReviewConfig::none(), NOW + 2).unwrap();
    assert_eq!((stored.stored, stored.excluded), (0, 1));

    // Reopening lifts the exclusion; undoing the reopen restores it; undoing the dismissal
    // lifts it again.
    set(&cat, &id, MatchStatus::Pending, NOW + 3).unwrap();
    assert!(cat.exclusions().unwrap().is_empty());
    review::undo(&cat, &id, "rev", None, NOW + 4).unwrap();
    assert_eq!(cat.match_(&id).unwrap().status, MatchStatus::Dismissed);
    assert_eq!(cat.exclusions().unwrap().len(), 1);
    let u = review::undo(&cat, &id, "rev", Some("wrong call"), NOW + 5).unwrap();
    assert_eq!(u.region.status, MatchStatus::Pending);
    assert_eq!(u.region.review, None);
    assert!(cat.exclusions().unwrap().is_empty());
    let e = review::undo(&cat, &id, "rev", None, NOW + 6).unwrap_err().to_string();
    assert!(e.contains("no review change to undo"), "{e}");
}

#[test]
fn undo_restores_the_previous_decision() {
    let (_d, cat) = fixture::catalog();
    let up = fixture::upload('d', 60.0, NOW);
    let r = fixture::region(&up, Stem::Mix, EP01, 0.0, (0.0, 40.0), 0.95, Band::High);
    cat.put_scan(&up, &[r], &ReviewConfig::default(), NOW).unwrap();
    let id = cat.matches(&MatchFilter::default()).unwrap()[0].id.clone();
    let cfg = ReviewConfig::default();
    let d = Decision {
        reason: Some("misidentified".into()),
        note: Some("label says cover".into()),
        deadline_ms: Some(NOW + 7 * 24 * 60 * MIN),
        ..Decision::default()
    };
    review::set_status(&cat, &cfg, &id, MatchStatus::Disputed, d, "bob", NOW + MIN).unwrap();
    let u = review::undo(&cat, &id, "carol", None, NOW + 2 * MIN).unwrap();
    assert_eq!(u.region.status, MatchStatus::Confirmed);
    assert_eq!(u.region.rule.as_deref(), Some("auto:high_long"));
    assert_eq!(u.region.review.as_ref().unwrap().who, "aniprint");
    // Undo again reverts the auto-rule itself.
    let u = review::undo(&cat, &id, "carol", None, NOW + 3 * MIN).unwrap();
    assert_eq!((u.region.status, u.region.rule), (MatchStatus::Pending, None));
    assert_eq!(u.reverted.who, "aniprint");
}

/// The audit log as text, one line per record.
fn log_text(cat: &Catalog) -> String {
    let mut s = String::new();
    for r in cat.audit_log().unwrap() {
        writeln!(
            s,
            "#{} {} {} {} {} {} {}->{} reason={} note={} undoes={} deadline={} +excl={} -excl={}",
            r.seq,
            utc_iso(r.at_ms),
            r.who,
            r.kind.as_str(),
            r.target,
            r.action.as_str(),
            r.from.as_deref().unwrap_or("-"),
            r.to.as_deref().unwrap_or("-"),
            r.reason.as_deref().unwrap_or("-"),
            r.note.as_deref().unwrap_or("-"),
            r.undoes.map_or("-".into(), |u| u.to_string()),
            r.deadline_ms.map_or("-".into(), utc_iso),
            r.exclusion_added.as_deref().unwrap_or("-"),
            r.exclusion_removed.as_deref().unwrap_or("-"),
        )
        .unwrap();
    }
    s
}

#[test]
fn audit_log_is_complete_after_a_sequence_of_actions() {
    let (_d, cat) = fixture::catalog();
    let cfg = ReviewConfig::default();
    let up = fixture::upload('e', 90.0, NOW);
    let a = fixture::region(&up, Stem::Mix, EP01, 0.0, (0.0, 45.0), 0.97, Band::High);
    let b = fixture::region(&up, Stem::Voice, EP02, 50.0, (60.0, 70.0), 0.8, Band::Medium);
    cat.put_scan(&up, &[a.clone(), b.clone()], &cfg, NOW).unwrap();
    let (a, b) = (a.computed_id(), b.computed_id());
    let at = |m: u64| NOW + m * MIN;
    let dec = |reason: Option<&str>, note: Option<&str>, exclude: bool| Decision {
        reason: reason.map(String::from),
        note: note.map(String::from),
        exclude,
        deadline_ms: None,
    };
    review::set_status(
        &cat,
        &cfg,
        &a,
        MatchStatus::Disputed,
        dec(Some("fair_use"), Some("uploader claims parody"), false),
        "alice",
        at(1),
    )
    .unwrap();
    review::set_status(
        &cat,
        &cfg,
        &a,
        MatchStatus::Escalated,
        dec(None, Some("to legal"), false),
        "bob",
        at(2),
    )
    .unwrap();
    review::undo(&cat, &a, "bob", Some("too early"), at(3)).unwrap();
    review::set_status(
        &cat,
        &cfg,
        &b,
        MatchStatus::Dismissed,
        dec(Some("own_content"), None, true),
        "alice",
        at(4),
    )
    .unwrap();
    review::set_status(
        &cat,
        &cfg,
        &b,
        MatchStatus::Pending,
        dec(None, Some("reopened"), false),
        "carol",
        at(5),
    )
    .unwrap();
    // A refused change leaves no trace.
    assert!(
        review::set_status(
            &cat,
            &cfg,
            &b,
            MatchStatus::Escalated,
            Decision::default(),
            "mallory",
            at(6)
        )
        .is_err()
    );
    let piece = cat.pieces_of(EP01).unwrap()[0].id.clone();
    cat.set_pieces_status_audited(
        std::slice::from_ref(&piece),
        PieceStatus::Drop,
        "alice",
        Some("clipping"),
        at(7),
    )
    .unwrap();
    // Setting the same status again is not a change.
    cat.set_pieces_status_audited(
        std::slice::from_ref(&piece),
        PieceStatus::Drop,
        "alice",
        None,
        at(8),
    )
    .unwrap();
    cat.set_pieces_status_audited(
        std::slice::from_ref(&piece),
        PieceStatus::Keep,
        "bob",
        None,
        at(9),
    )
    .unwrap();

    let log = cat.audit_log().unwrap();
    assert!(log.windows(2).all(|w| w[1].seq == w[0].seq + 1 && w[1].at_ms >= w[0].at_ms));
    assert_eq!(cat.audit_of(TargetKind::Match, &a).unwrap().len(), 4);
    assert_eq!(cat.audit_of(TargetKind::Piece, &piece).unwrap().len(), 2);
    let text = log_text(&cat).replace(&a, "<A>").replace(&b, "<B>");
    insta::assert_snapshot!("rights_review_audit_log", text);
}
