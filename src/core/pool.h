/* The worker pool: a fixed number of threads that run the jobs pushed onto
 * one shared FIFO queue. Handlers that touch the database run here, never on
 * an event-loop thread; the pool is sized to the database connection pool,
 * so a worker that takes a job always finds a connection (docs/
 * ARCHITECTURE.md, "Threads"). One queue for everything: a duplicate request
 * never waits behind its original on a queue of its own, it is taken by the
 * next free worker and sees the original in flight. */
#ifndef RF_POOL_H
#define RF_POOL_H

/* A job is embedded in its owner's struct (intrusive: pushing allocates
 * nothing); run gets it back and may push it again later. */
struct rf_job {
    struct rf_job *next;
    void (*run)(struct rf_job *j);
};

/* Starts n worker threads. Returns 0, or -1 (logged). */
int rf_pool_start(int n);
/* Queues j for the next free worker. Thread-safe; never blocks on a job. */
void rf_pool_push(struct rf_job *j);
/* Jobs queued or running now. */
unsigned rf_pool_pending(void);
/* Lets running jobs finish and joins the workers; jobs still queued are
 * dropped (their owners are torn down by the caller). */
void rf_pool_stop(void);

#endif
