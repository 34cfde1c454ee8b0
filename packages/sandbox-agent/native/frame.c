/* Frame building, frame queues, the uint32 hash map and the payload reader. */
#include "agent.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

static void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n);
  if (!q) {
    logmsg("out of memory (%zu bytes)", n);
    abort();
  }
  return q;
}

/* Allocates a frame with room for cap payload bytes and writes its header (length set on send). */
struct frame *frame_new(uint8_t type, uint8_t flags, uint32_t id, size_t cap) {
  struct frame *f = xrealloc(NULL, sizeof *f + HDR + cap);
  f->next = NULL;
  f->len = HDR;
  f->cap = HDR + cap;
  f->off = 0;
  set32(f->d, 0);
  f->d[4] = type;
  f->d[5] = flags;
  f->d[6] = f->d[7] = 0;
  set32(f->d + 8, id);
  return f;
}

/* Makes room for n more payload bytes. */
void frame_reserve(struct frame **f, size_t n) {
  struct frame *g = *f;
  if (g->len + n <= g->cap) return;
  size_t cap = g->cap * 2;
  if (cap < g->len + n) cap = g->len + n;
  g = xrealloc(g, sizeof *g + cap);
  g->cap = cap;
  *f = g;
}

void fput(struct frame **f, const void *p, size_t n) {
  frame_reserve(f, n);
  memcpy((*f)->d + (*f)->len, p, n);
  (*f)->len += n;
}
void fput_u8(struct frame **f, uint8_t v) { fput(f, &v, 1); }
void fput_u16(struct frame **f, uint16_t v) { fput(f, &v, 2); }
void fput_u32(struct frame **f, uint32_t v) { fput(f, &v, 4); }
void fput_u64(struct frame **f, uint64_t v) { fput(f, &v, 8); }
void fput_str(struct frame **f, const void *s, size_t n) {
  fput_u32(f, (uint32_t)n);
  fput(f, s, n);
}
void fput_cstr(struct frame **f, const char *s) { fput_str(f, s, strlen(s)); }

void fq_push(struct fq *q, struct frame *f) {
  f->next = NULL;
  if (q->tail) q->tail->next = f;
  else q->head = f;
  q->tail = f;
}

struct frame *fq_pop(struct fq *q) {
  struct frame *f = q->head;
  if (!f) return NULL;
  q->head = f->next;
  if (!q->head) q->tail = NULL;
  f->next = NULL;
  return f;
}

void fq_free(struct fq *q) {
  struct frame *f;
  while ((f = fq_pop(q))) free(f);
  q->bytes = 0;
}

/* ---- uint32 -> pointer map: open addressing, linear probing, backward-shift deletion ---- */

static uint32_t slot(uint32_t k, uint32_t cap) { return (k * 2654435761u) & (cap - 1); }

void *imap_get(const struct imap *m, uint32_t k) {
  if (!m->cap || !k) return NULL;
  for (uint32_t i = slot(k, m->cap);; i = (i + 1) & (m->cap - 1)) {
    if (m->t[i].k == k) return m->t[i].v;
    if (!m->t[i].k) return NULL;
  }
}

static void place(struct ient *t, uint32_t cap, uint32_t k, void *v) {
  uint32_t i = slot(k, cap);
  while (t[i].k) i = (i + 1) & (cap - 1);
  t[i].k = k;
  t[i].v = v;
}

int imap_put(struct imap *m, uint32_t k, void *v) {
  if (!k) return -1;
  if ((m->n + 1) * 4 > m->cap * 3) {
    uint32_t nc = m->cap ? m->cap * 2 : 16;
    struct ient *nt = calloc(nc, sizeof *nt);
    if (!nt) return -1;
    for (uint32_t i = 0; i < m->cap; i++)
      if (m->t[i].k) place(nt, nc, m->t[i].k, m->t[i].v);
    free(m->t);
    m->t = nt;
    m->cap = nc;
  }
  for (uint32_t i = slot(k, m->cap);; i = (i + 1) & (m->cap - 1)) {
    if (m->t[i].k == k) {
      m->t[i].v = v;
      return 0;
    }
    if (!m->t[i].k) {
      m->t[i].k = k;
      m->t[i].v = v;
      m->n++;
      return 0;
    }
  }
}

void *imap_del(struct imap *m, uint32_t k) {
  if (!m->cap || !k) return NULL;
  uint32_t mask = m->cap - 1, i = slot(k, m->cap);
  while (m->t[i].k != k) {
    if (!m->t[i].k) return NULL;
    i = (i + 1) & mask;
  }
  void *v = m->t[i].v;
  m->t[i].k = 0;
  m->n--;
  /* Shift later members of the probe run back so lookups never stop early. */
  for (uint32_t j = (i + 1) & mask; m->t[j].k; j = (j + 1) & mask) {
    uint32_t h = slot(m->t[j].k, m->cap);
    bool stays = (j > i) ? (h > i && h <= j) : (h > i || h <= j);
    if (!stays) {
      m->t[i] = m->t[j];
      m->t[j].k = 0;
      i = j;
    }
  }
  return v;
}

/* ---- payload reader ---- */

static const uint8_t *take(struct rd *r, size_t n) {
  if (r->bad || (size_t)(r->e - r->p) < n) {
    r->bad = true;
    return NULL;
  }
  const uint8_t *p = r->p;
  r->p += n;
  return p;
}
uint8_t rd_u8(struct rd *r) {
  const uint8_t *p = take(r, 1);
  return p ? *p : 0;
}
uint16_t rd_u16(struct rd *r) {
  uint16_t v = 0;
  const uint8_t *p = take(r, 2);
  if (p) memcpy(&v, p, 2);
  return v;
}
uint32_t rd_u32(struct rd *r) {
  const uint8_t *p = take(r, 4);
  return p ? get32(p) : 0;
}
uint64_t rd_u64(struct rd *r) {
  uint64_t v = 0;
  const uint8_t *p = take(r, 8);
  if (p) memcpy(&v, p, 8);
  return v;
}
const uint8_t *rd_bytes(struct rd *r, uint32_t *len) {
  *len = rd_u32(r);
  const uint8_t *p = take(r, *len);
  if (!p) *len = 0;
  return p;
}

/* Reads an absolute path into out (PATH_MAX bytes), dropping trailing slashes. Returns 0 or errno. */
int rd_path(struct rd *r, char *out) {
  uint32_t n;
  const uint8_t *p = rd_bytes(r, &n);
  if (!p || n == 0 || p[0] != '/' || memchr(p, 0, n)) return EINVAL;
  if (n >= PATH_MAX) return ENAMETOOLONG;
  memcpy(out, p, n);
  while (n > 1 && out[n - 1] == '/') n--;
  out[n] = 0;
  return 0;
}
