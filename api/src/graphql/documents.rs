//! Parsed GraphQL documents kept by their text, so a query sent again
//! (a client's fixed query with new variables, a dashboard's poll) is not
//! parsed again: parsing was 7–10 % of a lookup's CPU (BENCHMARKS.md,
//! "Run of 2026-12-08").
//!
//! Only the parse is skipped. async-graphql still checks a cached
//! document's depth and directives, validates it against the schema and
//! measures its complexity on every request, so a cached document passes
//! exactly the checks it would pass parsed afresh. A text that does not
//! parse is never kept: the executor parses it and reports the error.

use std::{
    num::NonZeroUsize,
    sync::{Arc, Mutex},
};

use async_graphql::parser::types::ExecutableDocument;
use lru::LruCache;

/// Documents kept (least recently used dropped first). A query's document
/// is a few kilobytes, so the cache stays within a few megabytes.
pub const CAPACITY: usize = 1024;
/// Longer query texts are parsed every time: they would crowd the cache
/// and are not what a client sends in a loop.
pub const MAX_TEXT: usize = 4096;

pub struct Documents {
    cache: Mutex<LruCache<Box<str>, Arc<ExecutableDocument>>>,
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

    /// Gives `request` its parsed document: the kept one, or a fresh parse
    /// that is then kept. Leaves a text that does not parse (or is too
    /// long to keep) to the executor.
    pub fn prepare(&self, request: &mut async_graphql::Request) {
        if request.query.len() > MAX_TEXT {
            return;
        }
        let kept = self
            .cache
            .lock()
            .ok()
            .and_then(|mut c| c.get(request.query.as_str()).cloned());
        let doc = match kept {
            Some(doc) => doc,
            None => match async_graphql::parser::parse_query(&request.query) {
                Ok(doc) => {
                    let doc = Arc::new(doc);
                    if let Ok(mut c) = self.cache.lock() {
                        c.put(request.query.as_str().into(), doc.clone());
                    }
                    doc
                }
                Err(_) => return,
            },
        };
        // Cloned outside the lock: the executor takes the document by value.
        request.set_parsed_query(ExecutableDocument::clone(&doc));
    }

    /// Documents kept now.
    pub fn len(&self) -> usize {
        self.cache.lock().map_or(0, |c| c.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Request, Schema};

    use super::*;

    struct Query;

    #[Object]
    impl Query {
        async fn value(&self, n: i32) -> i32 {
            n * 2
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

    async fn run(documents: &Documents, query: &str) -> async_graphql::Response {
        let mut request = Request::new(query);
        documents.prepare(&mut request);
        schema().execute(request).await
    }

    #[tokio::test]
    async fn a_kept_document_answers_as_a_fresh_parse_and_passes_the_same_checks() {
        let documents = Documents::with_capacity(2);
        let fresh = schema().execute("{ value(n: 21) }").await;
        for round in 0..2 {
            let kept = run(&documents, "{ value(n: 21) }").await;
            assert_eq!(kept.data, fresh.data, "round {round}");
            assert!(kept.errors.is_empty(), "round {round}: {:?}", kept.errors);
        }
        assert_eq!(documents.len(), 1, "sent twice, kept once");

        // Too deep for the schema's limit: refused from the cache too.
        let deep = "{ nested { nested { value(n: 1) } } }";
        for round in 0..2 {
            let answer = run(&documents, deep).await;
            assert_eq!(answer.data, async_graphql::Value::Null, "round {round}");
            assert!(
                answer.errors[0].message.contains("nested too deep"),
                "round {round}: {:?}",
                answer.errors
            );
        }
        // Unknown fields are caught by validation, which runs every time.
        for round in 0..2 {
            let answer = run(&documents, "{ nope }").await;
            assert!(
                answer.errors[0].message.contains("Unknown field"),
                "round {round}: {:?}",
                answer.errors
            );
        }
        assert_eq!(documents.len(), 2, "the least recently used was dropped");
    }

    #[tokio::test]
    async fn a_text_that_does_not_parse_or_is_too_long_is_not_kept() {
        let documents = Documents::default();
        let answer = run(&documents, "{ value(n: ").await;
        assert!(!answer.errors.is_empty());
        assert_eq!(
            answer.errors[0].message,
            schema().execute("{ value(n: ").await.errors[0].message,
            "the same error as without the cache"
        );
        let long = format!("{{ value(n: 1) }}{}", " ".repeat(MAX_TEXT));
        let answer = run(&documents, &long).await;
        assert!(answer.errors.is_empty(), "{:?}", answer.errors);
        assert!(documents.is_empty());
    }
}
