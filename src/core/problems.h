/* The problem list: every RFC 9457 problem the server answers with, once
 * (docs/API.md, Conventions). One row per problem, in the style of libuv's
 * UV_ERRNO_MAP:
 *
 *   XX(ENUM, status, code, title, label)
 *
 *   ENUM    the suffix of enum rf_problem: handlers say RF_P_USERNAME_TAKEN
 *   status  the HTTP status, always the same for a code: a caller cannot
 *           pick another
 *   code    the "code" member and the end of "type" (a bare token: it is
 *           stringified for the body and pasted into the build's check)
 *   title   the "title" member
 *   label   CONFLICT: a value of racefree_http_conflicts_total{code} (409s
 *           only); NONE: not one (an unlabelled 409 counts as "other")
 *
 * Why here, in core: the list is shared knowledge, like core/rules.h. The
 * HTTP layer (http/reply.c) only turns a row into a body and never names a
 * domain code; core/metrics.c takes its conflict labels from it, and core
 * may not include the api layer above it. Handlers in api/ and the HTTP
 * layer's own answers (404, 405, 413, ...) both name rows by enum.
 *
 * The rows must match docs/openapi.json (every code with the status it is
 * documented with, and nothing more or less): api/openapi.c holds them to
 * the document at compile time, through a header that mk/openapi.mk
 * generates from it. The 409 rows' order is the order of the conflict
 * series in GET /metrics. */
#ifndef RF_PROBLEMS_H
#define RF_PROBLEMS_H

#define RF_PROBLEM_MAP(XX)                                                                         \
    /* The HTTP layer's own: routing, the root key, the body as a whole. */                        \
    XX(NOT_FOUND, 404, not_found, "Not found", NONE)                                               \
    XX(METHOD_NOT_ALLOWED, 405, method_not_allowed, "Method not allowed", NONE)                    \
    XX(UNAUTHORIZED, 401, unauthorized, "Missing or unknown root key", NONE)                       \
    XX(UNSUPPORTED_MEDIA_TYPE, 415, unsupported_media_type,                                        \
       "Request body must be application/json", NONE)                                              \
    XX(PAYLOAD_TOO_LARGE, 413, payload_too_large, "Request body too large", NONE)                  \
    XX(INVALID_JSON, 400, invalid_json, "Request body is not a JSON object", NONE)                 \
    XX(UNKNOWN_FIELD, 422, unknown_field, "Unknown field", NONE)                                   \
    XX(MISSING_FIELD, 422, missing_field, "Missing required field", NONE)                          \
    XX(INVALID_FIELD, 422, invalid_field, "Field has the wrong type or value", NONE)               \
    XX(INVALID_QUERY, 422, invalid_query, "Invalid query parameter", NONE)                         \
    /* Values a handler rejects. */                                                                \
    XX(INVALID_EMAIL, 422, invalid_email, "Invalid email address", NONE)                           \
    XX(INVALID_NAME, 422, invalid_name, "Invalid name", NONE)                                      \
    XX(INVALID_USERNAME, 422, invalid_username, "Invalid username", NONE)                          \
    XX(USERNAME_RESERVED, 422, username_reserved, "Username is reserved", NONE)                    \
    XX(INVALID_STARTS_AT, 422, invalid_starts_at, "Invalid startsAt", NONE)                        \
    XX(INVALID_EXTERNAL_ID, 422, invalid_external_id, "Invalid externalId", NONE)                  \
    XX(INVALID_META, 422, invalid_meta, "Invalid meta", NONE)                                      \
    XX(INVALID_EXPIRES, 422, invalid_expires, "Invalid expires", NONE)                             \
    XX(INVALID_REMAINING, 422, invalid_remaining, "Invalid remaining", NONE)                       \
    XX(INVALID_RATELIMITS, 422, invalid_ratelimits, "Invalid ratelimits", NONE)                    \
    XX(UNKNOWN_RATELIMIT, 422, unknown_ratelimit, "No such ratelimit on the key or its identity",  \
       NONE)                                                                                       \
    XX(INVALID_REFILL, 422, invalid_refill, "Invalid refill", NONE)                                \
    XX(INVALID_CREDITS, 422, invalid_credits, "Invalid credits operation", NONE)                   \
    XX(INVALID_TYPE, 422, invalid_type, "Invalid type", NONE)                                      \
    /* Conflicts: what a race's losers get. */                                                     \
    XX(USERNAME_TAKEN, 409, username_taken, "Username is taken", CONFLICT)                         \
    XX(IDENTITY_EXISTS, 409, identity_exists, "Identity already exists", CONFLICT)                 \
    XX(QUOTA_EXCEEDED, 409, quota_exceeded, "Quota exceeded", CONFLICT)                            \
    XX(IDEMPOTENCY_KEY_IN_PROGRESS, 409, idempotency_key_in_progress,                              \
       "A request with this key is in progress", CONFLICT)                                         \
    XX(KEY_REROLLED, 409, key_rerolled, "The key was already rerolled", CONFLICT)                  \
    XX(CREDITS_UNLIMITED, 409, credits_unlimited, "The key has unlimited credits", CONFLICT)       \
    /* Idempotency-Key and If-Match. */                                                            \
    XX(INVALID_IDEMPOTENCY_KEY, 400, invalid_idempotency_key, "Invalid Idempotency-Key", NONE)     \
    XX(IDEMPOTENCY_KEY_REUSED, 422, idempotency_key_reused,                                        \
       "Idempotency-Key reused with another request", NONE)                                        \
    XX(INVALID_IF_MATCH, 400, invalid_if_match, "Invalid If-Match", NONE)                          \
    XX(PRECONDITION_FAILED, 412, precondition_failed, "Precondition failed", NONE)                 \
    XX(PRECONDITION_REQUIRED, 428, precondition_required, "Precondition required", NONE)           \
    /* The server's side. */                                                                       \
    XX(PROVISIONING_FAILED, 503, provisioning_failed, "Provisioning failed", NONE)                 \
    XX(DATABASE_UNAVAILABLE, 503, database_unavailable, "Database unavailable", NONE)              \
    XX(INSUFFICIENT_STORAGE, 507, insufficient_storage, "Database storage full", NONE)             \
    XX(INTERNAL_ERROR, 500, internal_error, "Internal error", NONE)

enum rf_problem {
#define RF_PROBLEM_ENUM_(e, status, code, title, label) RF_P_##e,
    RF_PROBLEM_MAP(RF_PROBLEM_ENUM_)
#undef RF_PROBLEM_ENUM_
        RF_P_COUNT
};

/* RF_PROBLEM_IF_CONFLICT(label, x...) is x for a CONFLICT row, nothing for
 * NONE: how a table of the labelled rows only is written. */
#define RF_PROBLEM_IF_CONFLICT(label, ...) RF_PROBLEM_IF_CONFLICT_##label(__VA_ARGS__)
#define RF_PROBLEM_IF_CONFLICT_CONFLICT(...) __VA_ARGS__
#define RF_PROBLEM_IF_CONFLICT_NONE(...)

/* A conflict label on another status would never be counted: reply.c
 * counts 409s only. */
#define RF_PROBLEM_LABEL_409_(e, status, code, title, label)                                       \
    RF_PROBLEM_IF_CONFLICT(label, _Static_assert(status == 409, #code " is labelled, not a 409");)
RF_PROBLEM_MAP(RF_PROBLEM_LABEL_409_)
#undef RF_PROBLEM_LABEL_409_

#endif
