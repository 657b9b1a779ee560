#include "core/arena.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rf_arena_chunk {
    struct rf_arena_chunk *next;
    size_t size, off;
    _Alignas(max_align_t) unsigned char data[];
};

#define CHUNK_MIN 4096
#define ALIGN (sizeof(max_align_t))

void rf_arena_init(struct rf_arena *a, size_t limit)
{
    a->head = NULL;
    a->used = 0;
    a->limit = limit;
}

void rf_arena_free(struct rf_arena *a)
{
    struct rf_arena_chunk *c = a->head;
    while (c) {
        struct rf_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->used = 0;
}

void *rf_arena_alloc(struct rf_arena *a, size_t n)
{
    size_t need = (n + ALIGN - 1) & ~(ALIGN - 1);
    if (need < n || (a->limit && (need > a->limit || a->used > a->limit - need)))
        return NULL;
    struct rf_arena_chunk *c = a->head;
    if (!c || c->size - c->off < need) {
        size_t size = need > CHUNK_MIN ? need : CHUNK_MIN;
        c = malloc(sizeof(*c) + size);
        if (!c)
            return NULL;
        c->size = size;
        c->off = 0;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->off;
    c->off += need;
    a->used += need;
    return p;
}

char *rf_arena_strndup(struct rf_arena *a, const char *s, size_t n)
{
    char *p = rf_arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *rf_arena_strdup(struct rf_arena *a, const char *s)
{
    return s ? rf_arena_strndup(a, s, strlen(s)) : NULL;
}

char *rf_arena_printf(struct rf_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *p = rf_arena_alloc(a, (size_t)n + 1);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}
