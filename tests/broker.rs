//! The broker's atomic steps driven directly through the library against a private
//! `redis-server`: several tasks' finish steps in one script call, each applied or fenced off
//! on its own.

use std::time::Duration;

use redis::Commands as _;
use taskbox::broker::message::{NewTask, encode};
use taskbox::broker::{Broker, Finish, SentinelOptions};
use taskbox_tests::redis::RedisServer;

async fn broker(redis: &RedisServer, worker: &str) -> Broker {
    Broker::connect(
        &redis.url(),
        &SentinelOptions::default(),
        worker,
        "taskbox:dead-letters",
    )
    .await
    .expect("connect")
}

#[tokio::test]
async fn one_batch_of_finish_steps_answers_each_step_and_fences_only_the_lost_one() {
    let redis = RedisServer::start();
    let mut conn = redis.conn();
    let mine = broker(&redis, "mine").await;
    let other = broker(&redis, "other").await;

    let mut tags = Vec::new();
    for i in 0..3 {
        let (key, envelope) = encode(&NewTask::new(format!("t{i}"), "dataset"));
        let _: () = conn.lpush(&key, envelope).unwrap();
    }
    let keys = vec!["dataset".to_string()];
    let fetched = mine.fetch(&keys, 2, &[]).await.expect("fetch");
    assert_eq!(fetched.len(), 2);
    tags.extend(fetched.iter().map(|d| d.tag.clone()));
    // The third message belongs to another worker: "mine" must not be able to finish it.
    let theirs = other.fetch(&keys, 1, &[]).await.expect("fetch");
    assert_eq!(theirs.len(), 1);
    tags.push(theirs[0].tag.clone());

    let step = |n: usize, require_owned: bool| Finish {
        require_owned,
        results: vec![(
            format!("celery-task-meta-r{n}"),
            format!("{{\"status\":\"SUCCESS\",\"n\":{n}}}"),
        )],
        result_ttl: Some(Duration::from_secs(60)),
        pushes: if n == 1 {
            vec![("dataset".to_string(), "{\"follow\":\"up\"}".to_string())]
        } else {
            Vec::new()
        },
        ..Finish::default()
    };
    let steps = [step(0, true), step(1, true), step(2, true)];
    let answers = mine
        .finish_many(&[
            (tags[0].as_str(), &steps[0]),
            (tags[1].as_str(), &steps[1]),
            (tags[2].as_str(), &steps[2]),
        ])
        .await
        .expect("finish_many");
    assert_eq!(
        answers,
        vec![true, true, false],
        "the third step is fenced off"
    );

    // The applied steps stored their results (with the expiry), published the follow-up and
    // acked; the fenced one left no trace and its message stays unacked for its owner.
    for n in 0..2 {
        let stored: Option<String> = conn.get(format!("celery-task-meta-r{n}")).unwrap();
        assert_eq!(
            stored.as_deref(),
            Some(format!("{{\"status\":\"SUCCESS\",\"n\":{n}}}").as_str())
        );
        let ttl: i64 = conn.ttl(format!("celery-task-meta-r{n}")).unwrap();
        assert!((1..=60).contains(&ttl), "result expiry {ttl}");
    }
    let fenced: Option<String> = conn.get("celery-task-meta-r2").unwrap();
    assert_eq!(fenced, None);
    let queued: Vec<String> = conn.lrange("dataset", 0, -1).unwrap();
    assert_eq!(queued, vec!["{\"follow\":\"up\"}".to_string()]);
    let unacked: Vec<String> = conn.hkeys("unacked").unwrap();
    assert_eq!(unacked, vec![tags[2].clone()]);
    let owned_by_mine: i64 = conn.hlen("taskbox:owned:mine").unwrap();
    assert_eq!(owned_by_mine, 0);

    // The owner can still finish it, through the single-step path.
    assert!(
        other
            .finish(&tags[2], &step(2, true))
            .await
            .expect("finish")
    );
    let unacked: i64 = conn.hlen("unacked").unwrap();
    assert_eq!(unacked, 0);
}
