//! The committer owns the path from a finished task to Redis: it gathers the atomic finish
//! steps of tasks that end at about the same time and sends them in one `finish.lua` call.
//!
//! There is one batch in flight at a time. When the worker is quiet a step goes out alone, at
//! once; under load the steps that pile up while a batch is on the wire form the next batch,
//! so the number of round trips and script calls per task falls as the load rises. Each
//! task's step stays atomic on its own with its own answer, so batching changes no guarantee.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::broker::{Broker, BrokerError, Finish};

/// The most steps in one script call: Redis runs a script to the end before serving anyone
/// else, so a batch is kept to a few milliseconds of its time.
const MAX_BATCH: usize = 64;

/// What a step came to: applied (true) or fenced off (false), or why it could not be sent.
pub type Outcome = Result<bool, Arc<BrokerError>>;

struct Request {
    tag: String,
    finish: Arc<Finish>,
    reply: oneshot::Sender<Outcome>,
}

/// The handle executors send finish steps through; cheap to clone.
#[derive(Debug, Clone)]
pub struct Committer {
    tx: mpsc::UnboundedSender<Request>,
}

impl Committer {
    /// Starts the batching task on the current runtime; it ends when every handle is dropped.
    pub fn start(broker: Broker) -> Committer {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(broker, rx));
        Committer { tx }
    }

    /// Applies one finish step (in whatever batch it lands in) and waits for its answer.
    pub async fn finish(&self, tag: &str, finish: Arc<Finish>) -> Outcome {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            tag: tag.to_string(),
            finish,
            reply,
        };
        let gone = || {
            Arc::new(BrokerError::Command {
                op: "finish",
                source: redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "the worker's committer has stopped",
                )),
            })
        };
        if self.tx.send(request).is_err() {
            return Err(gone());
        }
        answer.await.unwrap_or_else(|_| Err(gone()))
    }
}

async fn run(broker: Broker, mut rx: mpsc::UnboundedReceiver<Request>) {
    let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let steps: Vec<(&str, &Finish)> = batch
            .iter()
            .map(|r| (r.tag.as_str(), r.finish.as_ref()))
            .collect();
        let answers = broker.finish_many(&steps).await;
        drop(steps);
        match answers {
            Ok(answers) => {
                for (request, applied) in batch.drain(..).zip(answers) {
                    // A requester that went away (its task was aborted) needs no answer.
                    let _ = request.reply.send(Ok(applied));
                }
            }
            Err(err) => {
                let err = Arc::new(err);
                for request in batch.drain(..) {
                    let _ = request.reply.send(Err(err.clone()));
                }
            }
        }
    }
}
