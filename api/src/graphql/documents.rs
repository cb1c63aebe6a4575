//! Parsed GraphQL documents kept by their text, so a query sent again
//! (a client's fixed query with new variables, a dashboard's poll) is not
//! parsed again: parsing was 7–10 % of a lookup's CPU (BENCHMARKS.md,
//! "Run of 2026-12-08").
//!
//! Only the parse is skipped. async-graphql still checks a kept
//! document's depth and directives, validates it against the schema and
//! measures its complexity on every request, and each request gets its own
//! copy (the executor trims skipped selections and unused operations from
//! it). A document is kept only after a request with it was accepted, so
//! its size is bounded by the complexity limit and rejected queries take
//! no place; a text that does not parse is left to the executor, which
//! reports the error.

use std::{
    num::NonZeroUsize,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use async_graphql::parser::types::ExecutableDocument;
use lru::LruCache;

/// Documents kept (least recently used dropped first). An accepted query's
/// document is at most a few tens of kilobytes (the complexity limit caps
/// its fields), so the cache stays within tens of megabytes.
pub const CAPACITY: usize = 1024;
/// Longer query texts are parsed every time: they would crowd the cache
/// and are not what a client sends in a loop.
pub const MAX_TEXT: usize = 4096;

type Cache = LruCache<Box<str>, Arc<ExecutableDocument>>;

pub struct Documents {
    cache: Mutex<Cache>,
}

/// A document parsed for a request, to keep once the request was accepted.
pub struct Fresh {
    text: Box<str>,
    doc: Arc<ExecutableDocument>,
}

impl Default for Documents {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl Documents {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            cache: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    /// A panic elsewhere while holding the lock leaves a usable cache.
    fn lock(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives `request` its parsed document: the kept one, or a fresh parse,
    /// returned so the caller can [`keep`](Self::keep) it if the request is
    /// accepted. Leaves a text that does not parse (or is too long to
    /// keep) to the executor.
    pub fn prepare(&self, request: &mut async_graphql::Request) -> Option<Fresh> {
        if request.query.len() > MAX_TEXT {
            return None;
        }
        let kept = self.lock().get(request.query.as_str()).cloned();
        let (doc, fresh) = match kept {
            Some(doc) => (doc, None),
            None => {
                let doc = Arc::new(async_graphql::parser::parse_query(&request.query).ok()?);
                let fresh = Fresh {
                    text: request.query.as_str().into(),
                    doc: doc.clone(),
                };
                (doc, Some(fresh))
            }
        };
        // Copied outside the lock: the executor takes the document by value
        // and trims it.
        request.set_parsed_query(ExecutableDocument::clone(&doc));
        fresh
    }

    /// Keeps a document whose request was accepted.
    pub fn keep(&self, Fresh { text, doc }: Fresh) {
        let dropped = self.lock().push(text, doc);
        // A dropped document is freed after the lock is let go.
        drop(dropped);
    }
}

#[cfg(test)]
impl Documents {
    /// Documents kept now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the document of `text` is kept (without counting as a use).
    pub fn contains(&self, text: &str) -> bool {
        self.lock().contains(text)
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Request, Schema, Variables};
    use serde_json::json;

    use super::*;

    struct Query;

    #[Object]
    impl Query {
        async fn value(&self, n: i32) -> i32 {
            n * 2
        }

        async fn name(&self) -> &str {
            "callvault"
        }

        async fn nested(&self) -> Query {
            Query
        }
    }

    fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .limit_depth(2)
            .finish()
    }

    /// As the HTTP handler does: prepare, run, keep when accepted.
    async fn run(documents: &Documents, request: Request) -> async_graphql::Response {
        let mut request = request;
        let fresh = documents.prepare(&mut request);
        let answer = schema().execute(request).await;
        if let Some(fresh) = fresh
            && answer.errors.is_empty()
        {
            documents.keep(fresh);
        }
        answer
    }

    fn data(answer: &async_graphql::Response) -> serde_json::Value {
        assert!(answer.errors.is_empty(), "{:?}", answer.errors);
        answer.data.clone().into_json().unwrap()
    }

    #[tokio::test]
    async fn a_kept_document_answers_as_a_fresh_parse_and_passes_the_same_checks() {
        let documents = Documents::with_capacity(8);
        for round in 0..2 {
            let answer = run(&documents, Request::new("{ value(n: 21) }")).await;
            assert_eq!(data(&answer), json!({"value": 42}), "round {round}");
        }
        assert_eq!(documents.len(), 1, "sent twice, kept once");

        // Refused queries are refused every time and never kept.
        let deep = "{ nested { nested { value(n: 1) } } }";
        for round in 0..2 {
            let answer = run(&documents, Request::new(deep)).await;
            assert!(
                answer.errors[0].message.contains("nested too deep"),
                "round {round}: {:?}",
                answer.errors
            );
            let answer = run(&documents, Request::new("{ nope }")).await;
            assert!(
                answer.errors[0].message.contains("Unknown field"),
                "round {round}: {:?}",
                answer.errors
            );
        }
        assert!(!documents.contains(deep) && !documents.contains("{ nope }"));
        assert_eq!(documents.len(), 1);
    }

    #[tokio::test]
    async fn what_the_executor_trims_from_its_copy_does_not_reach_the_next_request() {
        let documents = Documents::default();
        // A selection skipped by one request's variables is there for the next.
        let text = "query Q($s: Boolean!) { name @skip(if: $s) value(n: 1) }";
        let with = |s: bool| Request::new(text).variables(Variables::from_json(json!({ "s": s })));
        assert_eq!(
            data(&run(&documents, with(true)).await),
            json!({"value": 2})
        );
        assert_eq!(
            data(&run(&documents, with(false)).await),
            json!({"name": "callvault", "value": 2})
        );
        assert_eq!(
            data(&run(&documents, with(true)).await),
            json!({"value": 2})
        );
        // The operation one request picks leaves the other in the document.
        let two = "query A { value(n: 5) } query B { name }";
        for round in 0..2 {
            let a = run(&documents, Request::new(two).operation_name("A")).await;
            assert_eq!(data(&a), json!({"value": 10}), "round {round}");
            let b = run(&documents, Request::new(two).operation_name("B")).await;
            assert_eq!(data(&b), json!({"name": "callvault"}), "round {round}");
        }
        assert!(documents.contains(text) && documents.contains(two));
    }

    #[tokio::test]
    async fn the_least_recently_used_document_goes_first() {
        let documents = Documents::with_capacity(2);
        let q = |n: i32| format!("{{ value(n: {n}) }}");
        run(&documents, Request::new(q(1))).await;
        run(&documents, Request::new(q(2))).await;
        run(&documents, Request::new(q(1))).await; // used again: now the newest
        run(&documents, Request::new(q(3))).await;
        assert!(documents.contains(&q(1)));
        assert!(!documents.contains(&q(2)));
        assert!(documents.contains(&q(3)));
    }

    #[tokio::test]
    async fn a_text_that_does_not_parse_or_is_too_long_is_not_kept() {
        let documents = Documents::default();
        let answer = run(&documents, Request::new("{ value(n: ")).await;
        assert!(
            answer.errors[0].message.contains("expected"),
            "{:?}",
            answer.errors
        );
        assert!(documents.is_empty());

        let query = "{ value(n: 1) }";
        let longest = format!("{query}{}", " ".repeat(MAX_TEXT - query.len()));
        let too_long = format!("{longest} ");
        assert_eq!(
            data(&run(&documents, Request::new(&too_long)).await),
            json!({"value": 2})
        );
        assert!(
            documents.is_empty(),
            "one byte over {MAX_TEXT} is parsed every time"
        );
        assert_eq!(
            data(&run(&documents, Request::new(&longest)).await),
            json!({"value": 2})
        );
        assert!(documents.contains(&longest), "{MAX_TEXT} bytes are kept");
    }
}
