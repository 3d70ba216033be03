/*
 * kb_function: Keras function(inputs, outputs, updates) compiled into a plan and run.
 *
 * Compile: prune to what the outputs and updates need, order by creation (a topological order),
 * find each node's storage root (views alias their input), and each root's last use.
 * Plan (cached per input-shape signature): concrete shapes through every op's infer rule, arena
 * offsets by lifetime (first fit, freed after the last consumer), one arena on the device.
 * Call: feeds into the arena, kernels in order (NVTX range per op), outputs copied to host
 * buffers owned by the function, then every update written to its variable, together.
 * Profiling (graph/profile.c): while the context's profiling is on, a call records a timer
 * before and after each kernel node and ends with a device sync and the accounting.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/error.h"
#include "graph/profile.h"
#include "graph/tensor.h"

#define KB_PLAN_CACHE 8
#define KB_ALIGN 256

typedef struct kb_plan {
    int64_t *sig;       /* shapes of the inputs, flattened */
    int n_sig;
    kb_desc *desc;      /* per node, concrete */
    int64_t *offset;    /* per node: arena offset of a root that needs one, else -1 */
    size_t arena_size;
    void *arena;
    uint64_t last_used;
    struct kb_plan *next;
} kb_plan;

struct kb_function {
    kb_context *ctx;
    uint64_t generation;
    kb_device device;
    const kb_device_api *api;
    void *dev;
    int n_in, n_out, n_upd;
    kb_tensor **inputs;  /* placeholders fed, in order (a sparse input expands to its 3 components) */
    int n_user_in;       /* inputs as the caller gave them */
    unsigned char *user_sparse; /* per caller input: a sparse placeholder (one feed -> 3) */
    int *out_pos, *upd_pos;
    int n_nodes;
    kb_tensor **nodes;
    int *in_pos;        /* n_nodes * KB_MAX_INPUTS: schedule positions of each node's inputs */
    int *root;          /* storage root of each node (itself unless it is a view) */
    int *last_use;      /* per root: last schedule position reading it (INT_MAX: kept to the end) */
    int *feed_of;       /* per node: index of the input feeding it, -1 */
    char (*label)[48];  /* per node: "<op>#<id>" for messages and NVTX, made once at compile */
    kb_plan *plans;
    uint64_t tick;
    void **bufs;        /* per node data pointer during a call */
    void **out_host;    /* host copies of outputs, made on first read (CUDA) */
    size_t *out_cap;
    kb_desc *out_desc;
    const void **out_src; /* per output after a call: its data on the device (in the plan's arena),
                             or its host copy once fetched */
    unsigned char *out_ready; /* out_src[i] is host memory the caller may read */
    int has_outputs;    /* a call has completed */
    int body;           /* a loop body (kb_function_new_body): inputs are cuts fed by pointer */
    int32_t lp_value;   /* host staging of the learning phase */
    kb_fn_profile *prof; /* made at the first profiled call */
    int prof_on;        /* this call is profiled: run() records the timers */
    int no_profile;     /* kb_eval's one-shot function */
};

kb_fn_profile *kb_function_prof(const kb_function *fn) { return fn->prof; }

/* ------------------------------------------------------------------------------------------ */

static kb_status resolve_device(kb_context *ctx, kb_device asked, kb_device *out) {
    KB_TRY(kb_env_device(&asked));
    if (asked == KB_DEVICE_AUTO) asked = ctx->device;
    if (asked != KB_DEVICE_CPU && asked != KB_DEVICE_CUDA)
        return kb_set_error(KB_ERR_INVALID_ARGUMENT, "kb_function_new: invalid device %d", (int)asked);
    if (asked == KB_DEVICE_CUDA) KB_TRY(kb_ctx_open_cuda(ctx));
    *out = asked;
    return KB_OK;
}

static void plan_free(kb_function *fn, kb_plan *p) {
    if (p->arena) fn->api->free(fn->dev, p->arena);
    free(p->sig);
    free(p->desc);
    free(p->offset);
    free(p);
}

void kb_function_free(kb_function *fn) {
    if (!fn) return;
    kb_prof_free(fn->prof);
    for (kb_plan *p = fn->plans, *nx; p; p = nx) {
        nx = p->next;
        plan_free(fn, p);
    }
    for (int i = 0; fn->out_host && i < fn->n_out; ++i) free(fn->out_host[i]);
    free(fn->out_host);
    free(fn->out_cap);
    free(fn->out_desc);
    free(fn->out_src);
    free(fn->out_ready);
    free(fn->inputs);
    free(fn->user_sparse);
    free(fn->out_pos);
    free(fn->upd_pos);
    free(fn->nodes);
    free(fn->in_pos);
    free(fn->root);
    free(fn->last_use);
    free(fn->feed_of);
    free(fn->label);
    free(fn->bufs);
    free(fn);
}

kb_device kb_function_device(const kb_function *fn) { return fn ? fn->device : KB_DEVICE_CPU; }


static kb_status check_list(const char *what, kb_context **ctx, kb_tensor *const *ts, int n) {
    const char *fn = "kb_function_new";
    if (n < 0 || (n > 0 && !ts))
        return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: %s is NULL with count %d", fn, what, n);
    for (int i = 0; i < n; ++i) {
        if (!ts[i]) { /* likely the NULL of a failed op: keep that op's error */
            if (kb_last_status() == KB_OK) kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: %s[%d] is NULL", fn, what, i);
            return kb_last_status();
        }
        if (ts[i]->magic != KB_TENSOR_MAGIC)
            return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: %s[%d] is not a live kb tensor", fn, what, i);
        if (*ctx && ts[i]->ctx != *ctx)
            return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: %s[%d] belongs to another context", fn, what, i);
        *ctx = ts[i]->ctx;
    }
    return KB_OK;
}

#define ALLOC(p, n)                                                                          \
    do {                                                                                     \
        (p) = calloc((size_t)((n) > 0 ? (n) : 1), sizeof *(p));                              \
        if (!(p)) {                                                                          \
            kb_set_error(KB_ERR_OUT_OF_MEMORY, "kb_function_new: out of host memory");       \
            goto fail;                                                                       \
        }                                                                                    \
    } while (0)

static kb_function *function_new(kb_context *ctx, kb_tensor *const *inputs, int n_inputs, kb_tensor *const *outputs,
                                 int n_outputs, kb_tensor *const *updates, int n_updates, kb_device device, int body);

kb_function *kb_function_new(kb_context *ctx, kb_tensor *const *inputs, int n_inputs, kb_tensor *const *outputs,
                             int n_outputs, kb_tensor *const *updates, int n_updates, kb_device device) {
    return function_new(ctx, inputs, n_inputs, outputs, n_outputs, updates, n_updates, device, 0);
}

kb_function *kb_function_new_body(kb_context *ctx, kb_tensor *const *cuts, int n_cuts, kb_tensor *const *outputs,
                                  int n_outputs, kb_device device) {
    return function_new(ctx, cuts, n_cuts, outputs, n_outputs, NULL, 0, device, 1);
}

static kb_function *function_new(kb_context *ctx, kb_tensor *const *inputs, int n_inputs, kb_tensor *const *outputs,
                                 int n_outputs, kb_tensor *const *updates, int n_updates, kb_device device, int body) {
    const char *fname = "kb_function_new";
    if (!ctx) {
        kb_null_arg(fname, "ctx");
        return NULL;
    }
    kb_context *c = ctx;
    if (check_list("inputs", &c, inputs, n_inputs) || check_list("outputs", &c, outputs, n_outputs) ||
        check_list("updates", &c, updates, n_updates))
        return NULL;
    for (int i = 0; i < n_inputs; ++i) {
        if (!body && inputs[i]->kind != KB_KIND_PLACEHOLDER && !inputs[i]->sparse_placeholder) {
            kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: inputs[%d] (%s) is not a placeholder", fname, i, inputs[i]->name);
            return NULL;
        }
        for (int j = 0; j < i; ++j)
            if (inputs[j] == inputs[i]) {
                kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: placeholder %s is given twice in inputs", fname, inputs[i]->name);
                return NULL;
            }
    }
    for (int i = 0; i < n_updates; ++i)
        if (updates[i]->kind != KB_KIND_OP || !(kb_op_table[updates[i]->op]->flags & KB_OPF_UPDATE)) {
            kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: updates[%d] (%s) is not an update op (make it with kb_update*)",
                         fname, i, updates[i]->name);
            return NULL;
        }
    kb_device dev = device; /* a body runs on the device of the function that runs its loop */
    if (!body && resolve_device(ctx, device, &dev) != KB_OK) return NULL;
    /* an update op among the outputs runs too (as fetching an assign op does in TF) */
    kb_tensor **upd = (kb_tensor **)calloc((size_t)(n_updates + n_outputs) + 1, sizeof *upd);
    if (!upd) {
        kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: out of host memory", fname);
        return NULL;
    }
    for (int i = 0; i < n_updates; ++i) upd[i] = updates[i];
    for (int i = 0; i < n_outputs; ++i) {
        int dup = body || !(outputs[i]->kind == KB_KIND_OP && (kb_op_table[outputs[i]->op]->flags & KB_OPF_UPDATE));
        for (int j = 0; j < n_updates && !dup; ++j) dup = upd[j] == outputs[i];
        if (!dup) upd[n_updates++] = outputs[i];
    }
    updates = upd;

    kb_function *fn = (kb_function *)calloc(1, sizeof *fn);
    int64_t nt = ctx->n_tensors;
    int *pos = NULL;
    kb_tensor **stack = NULL;
    unsigned char *need = NULL, *cut = NULL;
    if (!fn) {
        free(upd);
        kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: out of host memory", fname);
        return NULL;
    }
    fn->ctx = ctx;
    fn->body = body;
    fn->generation = ctx->generation;
    fn->device = dev;
    fn->api = kb_ctx_api(ctx, dev, &fn->dev);
    /* a sparse placeholder is fed through its components: indices, values, dense-shape carrier */
    fn->n_user_in = n_inputs;
    ALLOC(fn->user_sparse, n_inputs);
    int n_fed = n_inputs;
    for (int i = 0; i < n_inputs; ++i) {
        fn->user_sparse[i] = (unsigned char)(!body && inputs[i]->sparse_placeholder);
        n_fed += 2 * fn->user_sparse[i];
    }
    ALLOC(fn->inputs, n_fed);
    for (int i = 0, j = 0; i < n_inputs; ++i)
        if (fn->user_sparse[i])
            for (int c = 0; c < 3; ++c) fn->inputs[j++] = inputs[i]->in[c];
        else
            fn->inputs[j++] = inputs[i];
    inputs = fn->inputs;
    n_inputs = n_fed;
    fn->n_in = n_inputs;
    fn->n_out = n_outputs;
    fn->n_upd = n_updates;

    /* prune: everything the outputs and updates reach */
    ALLOC(need, nt);
    ALLOC(stack, nt);
    ALLOC(cut, nt); /* a body's inputs: the pruning stops there */
    for (int i = 0; i < n_inputs && body; ++i) cut[inputs[i]->id] = 1;
    int sp = 0; /* each tensor is pushed once (marked when pushed), so the stack holds at most nt */
    for (int i = 0; i < n_outputs + n_updates; ++i) {
        kb_tensor *t = i < n_outputs ? outputs[i] : updates[i - n_outputs];
        if (!need[t->id]) {
            need[t->id] = 1;
            stack[sp++] = t;
        }
    }
    while (sp) {
        kb_tensor *t = stack[--sp];
        for (int i = 0; i < t->n_in && !cut[t->id]; ++i)
            if (!need[t->in[i]->id]) {
                need[t->in[i]->id] = 1;
                stack[sp++] = t->in[i];
            }
    }
    ALLOC(pos, nt);
    int n = 0;
    for (int64_t i = 0; i < nt; ++i) pos[i] = need[i] ? n++ : -1;
    fn->n_nodes = n;
    ALLOC(fn->nodes, n);
    ALLOC(fn->in_pos, (int64_t)n * KB_MAX_INPUTS);
    ALLOC(fn->root, n);
    ALLOC(fn->last_use, n);
    ALLOC(fn->feed_of, n);
    ALLOC(fn->bufs, n);
    ALLOC(fn->label, n);
    for (int64_t i = 0; i < nt; ++i)
        if (pos[i] >= 0) fn->nodes[pos[i]] = ctx->tensors[i];
    for (int k = 0; k < n; ++k) {
        kb_tensor *t = fn->nodes[k];
        fn->feed_of[k] = -1;
        if (t->kind == KB_KIND_OP)
            snprintf(fn->label[k], sizeof fn->label[k], "%s#%lld", kb_op_table[t->op]->name, (long long)t->id);
        for (int i = 0; i < t->n_in && !cut[t->id]; ++i) fn->in_pos[k * KB_MAX_INPUTS + i] = pos[t->in[i]->id];
        fn->root[k] = (!cut[t->id] && t->kind == KB_KIND_OP && (kb_op_table[t->op]->flags & KB_OPF_ALIAS))
                          ? fn->root[fn->in_pos[k * KB_MAX_INPUTS]]
                          : k;
        fn->last_use[k] = -1;
        if (cut[t->id]) {
            for (int i = 0; i < n_inputs; ++i)
                if (inputs[i] == t) fn->feed_of[k] = i;
        } else if (t->kind == KB_KIND_PLACEHOLDER) {
            for (int i = 0; i < n_inputs; ++i)
                if (inputs[i] == t) fn->feed_of[k] = i;
            if (fn->feed_of[k] < 0 && !t->is_learning_phase) {
                kb_set_error(KB_ERR_INVALID_STATE,
                             "%s: the outputs need placeholder %s, which is not among the inputs (it cannot be fed)",
                             fname, t->name);
                goto fail;
            }
        }
    }
    for (int k = 0; k < n; ++k) {
        kb_tensor *t = fn->nodes[k];
        for (int i = 0; i < t->n_in && !cut[t->id]; ++i) {
            int r = fn->root[fn->in_pos[k * KB_MAX_INPUTS + i]];
            if (fn->last_use[r] < k) fn->last_use[r] = k;
        }
    }
    ALLOC(fn->out_pos, n_outputs);
    ALLOC(fn->upd_pos, n_updates);
    for (int i = 0; i < n_outputs; ++i) {
        fn->out_pos[i] = pos[outputs[i]->id];
        fn->last_use[fn->root[fn->out_pos[i]]] = INT_MAX;
    }
    for (int i = 0; i < n_updates; ++i) {
        fn->upd_pos[i] = pos[updates[i]->id];
        fn->last_use[fn->root[fn->upd_pos[i]]] = INT_MAX;
    }
    ALLOC(fn->out_host, n_outputs);
    ALLOC(fn->out_cap, n_outputs);
    ALLOC(fn->out_desc, n_outputs);
    ALLOC(fn->out_src, n_outputs);
    ALLOC(fn->out_ready, n_outputs);
    free(pos);
    free(stack);
    free(need);
    free(cut);
    free(upd);
    return fn;
fail:
    free(cut);
    free(pos);
    free(stack);
    free(need);
    free(upd);
    kb_function_free(fn);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Planning                                                                                     */

typedef struct blk {
    size_t off, size;
} blk;

/* First-fit over a sorted free list; grows the arena at the end. */
static size_t arena_take(blk *fl, int *nfl, size_t *top, size_t size) {
    for (int i = 0; i < *nfl; ++i)
        if (fl[i].size >= size) {
            size_t off = fl[i].off;
            fl[i].off += size;
            fl[i].size -= size;
            if (!fl[i].size) {
                memmove(&fl[i], &fl[i + 1], sizeof *fl * (size_t)(*nfl - i - 1));
                (*nfl)--;
            }
            return off;
        }
    if (*nfl && fl[*nfl - 1].off + fl[*nfl - 1].size == *top) { /* extend the last free block */
        size_t off = fl[*nfl - 1].off;
        (*nfl)--;
        *top = off + size;
        return off;
    }
    size_t off = *top;
    *top += size;
    return off;
}

static void arena_give(blk *fl, int *nfl, size_t off, size_t size) {
    int i = 0;
    while (i < *nfl && fl[i].off < off) i++;
    memmove(&fl[i + 1], &fl[i], sizeof *fl * (size_t)(*nfl - i));
    fl[i].off = off;
    fl[i].size = size;
    (*nfl)++;
    if (i + 1 < *nfl && fl[i].off + fl[i].size == fl[i + 1].off) { /* merge right */
        fl[i].size += fl[i + 1].size;
        memmove(&fl[i + 1], &fl[i + 2], sizeof *fl * (size_t)(*nfl - i - 2));
        (*nfl)--;
    }
    if (i > 0 && fl[i - 1].off + fl[i - 1].size == fl[i].off) { /* merge left */
        fl[i - 1].size += fl[i].size;
        memmove(&fl[i], &fl[i + 1], sizeof *fl * (size_t)(*nfl - i - 1));
        (*nfl)--;
    }
}

static size_t desc_bytes(const kb_desc *d) {
    int64_t n = kb_desc_size(d);
    return (size_t)(n < 0 ? 0 : n) * kb_dtype_size(d->dtype);
}

static int is_cut(const kb_function *fn, int k) { return fn->body && fn->feed_of[k] >= 0; }

static int needs_arena(const kb_function *fn, int k) {
    const kb_tensor *t = fn->nodes[k];
    if (fn->root[k] != k || t->shape_only || is_cut(fn, k)) return 0;
    return t->kind == KB_KIND_PLACEHOLDER || t->kind == KB_KIND_OP;
}

static kb_status make_plan(kb_function *fn, const kb_feed *feeds, kb_plan **out) {
    int n = fn->n_nodes;
    kb_plan *p = (kb_plan *)calloc(1, sizeof *p);
    blk *fl = NULL;
    int *die_head = NULL, *die_next = NULL;
    kb_status st = KB_OK;
    if (!p) return kb_set_error(KB_ERR_OUT_OF_MEMORY, "kb_function_call: out of host memory");
    p->desc = (kb_desc *)calloc((size_t)n + 1, sizeof *p->desc);
    p->offset = (int64_t *)calloc((size_t)n + 1, sizeof *p->offset);
    int nsig = 0;
    for (int i = 0; i < fn->n_in; ++i) nsig += feeds[i].rank;
    p->sig = (int64_t *)calloc((size_t)nsig + 1, sizeof *p->sig);
    fl = (blk *)calloc((size_t)n + 2, sizeof *fl);
    if (!p->desc || !p->offset || !p->sig || !fl) {
        st = kb_set_error(KB_ERR_OUT_OF_MEMORY, "kb_function_call: out of host memory");
        goto done;
    }
    p->n_sig = nsig;
    nsig = 0;
    for (int i = 0; i < fn->n_in; ++i)
        for (int d = 0; d < feeds[i].rank; ++d) p->sig[nsig++] = feeds[i].shape[d];
    /* concrete shapes */
    for (int k = 0; k < n && st == KB_OK; ++k) {
        kb_tensor *t = fn->nodes[k];
        if (t->kind == KB_KIND_PLACEHOLDER || is_cut(fn, k)) {
            p->desc[k] = t->desc;
            if (fn->feed_of[k] >= 0) {
                p->desc[k].rank = feeds[fn->feed_of[k]].rank;
                const kb_feed *f = &feeds[fn->feed_of[k]];
                for (int d = 0; d < f->rank; ++d) p->desc[k].shape[d] = f->shape[d];
            }
        } else if (t->kind != KB_KIND_OP) {
            p->desc[k] = t->desc;
        } else {
            kb_desc in[KB_MAX_INPUTS];
            for (int i = 0; i < t->n_in; ++i) in[i] = p->desc[fn->in_pos[k * KB_MAX_INPUTS + i]];
            const char *label = fn->label[k];
            st = kb_op_table[t->op]->infer(label, &t->attrs, in, t->n_in, &p->desc[k]);
            if (st == KB_OK) st = kb_check_size(label, &p->desc[k]);
            /* views and updates must keep the element count of their input */
            if (st == KB_OK && (kb_op_table[t->op]->flags & KB_OPF_ALIAS) &&
                kb_desc_size(&p->desc[k]) != kb_desc_size(&in[0]))
                st = kb_set_error(KB_ERR_SHAPE, "%s: %lld elements cannot be viewed as %lld", label,
                                  (long long)kb_desc_size(&in[0]), (long long)kb_desc_size(&p->desc[k]));
        }
    }
    if (st != KB_OK) goto done;
    /* arena offsets by lifetime: bucket each root by the step after which it is dead */
    die_head = (int *)malloc(sizeof(int) * ((size_t)n + 1));
    die_next = (int *)malloc(sizeof(int) * ((size_t)n + 1));
    if (!die_head || !die_next) {
        st = kb_set_error(KB_ERR_OUT_OF_MEMORY, "kb_function_call: out of host memory");
        goto done;
    }
    for (int k = 0; k < n; ++k) die_head[k] = -1;
    for (int r = n - 1; r >= 0; --r) {
        int lu = fn->last_use[r];
        if (!needs_arena(fn, r) || lu == INT_MAX) continue;
        int d = lu < 0 ? r : lu; /* an unread root dies right away */
        die_next[r] = die_head[d];
        die_head[d] = r;
    }
    int nfl = 0;
    size_t top = 0;
    for (int k = 0; k < n; ++k) {
        p->offset[k] = -1;
        if (needs_arena(fn, k)) {
            size_t sz = (desc_bytes(&p->desc[k]) + KB_ALIGN - 1) / KB_ALIGN * KB_ALIGN;
            p->offset[k] = (int64_t)arena_take(fl, &nfl, &top, sz ? sz : KB_ALIGN);
        }
        for (int r = die_head[k]; r >= 0; r = die_next[r]) {
            size_t sz = (desc_bytes(&p->desc[r]) + KB_ALIGN - 1) / KB_ALIGN * KB_ALIGN;
            arena_give(fl, &nfl, (size_t)p->offset[r], sz ? sz : KB_ALIGN);
        }
    }
    p->arena_size = top;
    st = fn->api->alloc(fn->dev, top, &p->arena);
done:
    free(fl);
    free(die_head);
    free(die_next);
    if (st != KB_OK) {
        p->arena = NULL;
        plan_free(fn, p);
        return st;
    }
    *out = p;
    return KB_OK;
}

static kb_status get_plan(kb_function *fn, const kb_feed *feeds, kb_plan **out) {
    kb_plan *lru = NULL;
    int count = 0;
    for (kb_plan *p = fn->plans; p; p = p->next, ++count) {
        int same = 1, k = 0;
        for (int i = 0; i < fn->n_in && same; ++i)
            for (int d = 0; d < feeds[i].rank && same; ++d) same = k < p->n_sig && p->sig[k++] == feeds[i].shape[d];
        if (same && k == p->n_sig) {
            p->last_used = ++fn->tick;
            *out = p;
            return KB_OK;
        }
        if (!lru || p->last_used < lru->last_used) lru = p;
    }
    if (count >= KB_PLAN_CACHE && lru) { /* evict the least recently used plan */
        kb_plan **pp = &fn->plans;
        while (*pp != lru) pp = &(*pp)->next;
        *pp = lru->next;
        KB_TRY(fn->api->sync(fn->dev));
        plan_free(fn, lru);
    }
    kb_plan *p;
    KB_TRY(make_plan(fn, feeds, &p));
    p->last_used = ++fn->tick;
    p->next = fn->plans;
    fn->plans = p;
    *out = p;
    return KB_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Running                                                                                      */

static kb_status check_feeds(const kb_function *fn, const kb_feed *feeds, int n_feeds) {
    const char *f = "kb_function_call";
    if (n_feeds != fn->n_in)
        return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: the function takes %d inputs, got %d feeds", f, fn->n_in, n_feeds);
    if (n_feeds && !feeds) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: feeds is NULL", f);
    for (int i = 0; i < n_feeds; ++i) {
        const kb_tensor *ph = fn->inputs[i];
        const kb_feed *fd = &feeds[i];
        char s1[128], s2[128];
        kb_dtype dt = fd->dtype == KB_FLOATX ? ph->desc.dtype : fd->dtype;
        if (!kb_dtype_valid(dt)) return kb_set_error(KB_ERR_DTYPE, "%s: feed %d has an invalid dtype %d", f, i, (int)fd->dtype);
        if (fd->rank != ph->desc.rank || (fd->rank && !fd->shape))
            return kb_set_error(KB_ERR_SHAPE, "%s: feed %d for %s %s has rank %d", f, i, ph->name,
                                kb_shape_str(&ph->desc, s1, sizeof s1), fd->rank);
        kb_desc d;
        memset(&d, 0, sizeof d);
        d.rank = fd->rank;
        for (int k = 0; k < fd->rank; ++k) {
            d.shape[k] = fd->shape[k];
            if (fd->shape[k] < 0 || (ph->desc.shape[k] != KB_NONE && ph->desc.shape[k] != fd->shape[k]))
                return kb_set_error(KB_ERR_SHAPE, "%s: feed %d has shape %s, placeholder %s has %s", f, i,
                                    kb_shape_str(&d, s1, sizeof s1), ph->name, kb_shape_str(&ph->desc, s2, sizeof s2));
        }
        KB_TRY(kb_check_size(f, &d));
        if (fd->indices)
            return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: feed %d has indices but %s is not a sparse placeholder", f,
                                i, ph->name);
        if (ph->shape_only) continue; /* a sparse input's dense shape: no data */
        size_t need = (size_t)kb_desc_size(&d) * kb_dtype_size(dt);
        if (fd->nbytes != need)
            return kb_set_error(KB_ERR_SHAPE, "%s: feed %d (%s) has %zu bytes, shape %s of %s needs %zu", f, i, ph->name,
                                fd->nbytes, kb_shape_str(&d, s1, sizeof s1), kb_dtype_name(dt), need);
        if (need && !fd->data) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: feed %d has NULL data", f, i);
    }
    return KB_OK;
}

static void make_buf(kb_buf *b, const kb_desc *d, void *data) {
    b->data = data;
    b->dtype = d->dtype;
    b->rank = d->rank;
    memcpy(b->shape, d->shape, sizeof b->shape);
    b->size = kb_desc_size(d);
}

/* A leaf's storage on the function's device, made current. */
static kb_status leaf_ptr(kb_function *fn, kb_tensor *t, void **ptr) {
    if (fn->device == KB_DEVICE_CPU) {
        KB_TRY(kb_leaf_sync_host(t));
        *ptr = t->host;
        return KB_OK;
    }
    if (!t->dev) KB_TRY(fn->api->alloc(fn->dev, t->nbytes, &t->dev));
    if (!t->dev_valid) {
        KB_TRY(fn->api->copy_h2d(fn->dev, t->dev, t->host, t->nbytes));
        t->dev_valid = 1;
    }
    *ptr = t->dev;
    return KB_OK;
}

static int is_half(kb_dtype dt) { return dt == KB_FLOAT16 || dt == KB_BFLOAT16; }

kb_status kb_cpu_call(const kb_exec *ex, const kb_op_def *def, const kb_attrs *a, const kb_buf *in, int n_in,
                      kb_buf *out) {
    int widen = !(def->flags & KB_OPF_CPU_ANY_DTYPE) && is_half(out->dtype);
    for (int i = 0; i < n_in; ++i) widen |= !(def->flags & KB_OPF_CPU_ANY_DTYPE) && is_half(in[i].dtype);
    if (!widen) return def->cpu(ex, a, in, n_in, out);
    kb_buf win[KB_MAX_INPUTS], wout = *out;
    void *tmp[KB_MAX_INPUTS + 1] = {0};
    kb_status st = KB_OK;
    for (int i = 0; i < n_in && st == KB_OK; ++i) {
        win[i] = in[i];
        if (!is_half(in[i].dtype)) continue;
        tmp[i] = malloc((size_t)(in[i].size ? in[i].size : 1) * sizeof(float));
        if (!tmp[i]) st = kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: out of host memory", ex->op);
        else kb_convert(in[i].data, in[i].dtype, tmp[i], KB_FLOAT32, in[i].size);
        win[i].data = tmp[i];
        win[i].dtype = KB_FLOAT32;
    }
    if (st == KB_OK && is_half(out->dtype)) {
        tmp[KB_MAX_INPUTS] = malloc((size_t)(out->size ? out->size : 1) * sizeof(float));
        if (!tmp[KB_MAX_INPUTS]) st = kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: out of host memory", ex->op);
        wout.data = tmp[KB_MAX_INPUTS];
        wout.dtype = KB_FLOAT32;
    }
    if (st == KB_OK) st = def->cpu(ex, a, win, n_in, &wout);
    if (st == KB_OK && is_half(out->dtype)) kb_convert(wout.data, KB_FLOAT32, out->data, out->dtype, out->size);
    for (int i = 0; i <= KB_MAX_INPUTS; ++i) free(tmp[i]);
    return st;
}

/* An op without a CUDA kernel inside a CUDA function: inputs to the host, CPU kernel, back. */
static kb_status run_on_host(kb_function *fn, const kb_exec *ex, const kb_op_def *def, kb_tensor *t, kb_buf *in,
                             kb_buf *out) {
    kb_context *ctx = fn->ctx;
    if (!ctx->fallback_logged[t->op] && !(def->flags & KB_OPF_HOST)) {
        ctx->fallback_logged[t->op] = 1;
        kb_notice(ctx, KB_LOG_WARN, "%s has no CUDA kernel yet: it runs on the CPU inside CUDA functions", def->name);
    }
    kb_status st = KB_OK;
    void *h[KB_MAX_INPUTS + 1] = {0};
    kb_buf hin[KB_MAX_INPUTS], hout = *out;
    for (int i = 0; i < t->n_in && st == KB_OK; ++i) {
        size_t nb = (size_t)in[i].size * kb_dtype_size(in[i].dtype);
        hin[i] = in[i];
        h[i] = malloc(nb ? nb : 1);
        if (!h[i]) st = kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: out of host memory", ex->op);
        else st = fn->api->copy_d2h(fn->dev, h[i], in[i].data, nb);
        hin[i].data = h[i];
    }
    size_t onb = (size_t)out->size * kb_dtype_size(out->dtype);
    if (st == KB_OK) {
        h[KB_MAX_INPUTS] = malloc(onb ? onb : 1);
        if (!h[KB_MAX_INPUTS]) st = kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: out of host memory", ex->op);
        hout.data = h[KB_MAX_INPUTS];
    }
    if (st == KB_OK) st = fn->api->sync(fn->dev);
    if (st == KB_OK) st = kb_cpu_call(ex, def, &t->attrs, hin, t->n_in, &hout);
    if (st == KB_OK) st = fn->api->copy_h2d(fn->dev, out->data, hout.data, onb);
    if (st == KB_OK) st = fn->api->sync(fn->dev);
    for (int i = 0; i <= KB_MAX_INPUTS; ++i) free(h[i]);
    return st;
}

/* Output i to the function's host buffer (a d2h copy on CUDA, a memcpy on the CPU). */
static kb_status fetch_output(kb_function *fn, int i) {
    size_t nb = desc_bytes(&fn->out_desc[i]);
    if (nb > fn->out_cap[i] || !fn->out_host[i]) {
        void *nbuf = realloc(fn->out_host[i], nb ? nb : 1);
        if (!nbuf) return kb_set_error(KB_ERR_OUT_OF_MEMORY, "kb_function_call: out of host memory for output %d", i);
        fn->out_host[i] = nbuf;
        fn->out_cap[i] = nb ? nb : 1;
    }
    kb_status st = fn->api->copy_d2h(fn->dev, fn->out_host[i], fn->out_src[i], nb);
    if (st == KB_OK) st = fn->api->sync(fn->dev);
    if (st != KB_OK) return st;
    fn->out_src[i] = fn->out_host[i];
    fn->out_ready[i] = 1;
    return KB_OK;
}

/* One kernel node on the function's device. */
static inline kb_status exec_node(kb_function *fn, const kb_exec *ex, const kb_op_def *def, kb_tensor *t, kb_buf *in,
                                  kb_buf *out) {
    if (out->size == 0) return KB_OK;
    if (fn->device == KB_DEVICE_CUDA && def->cuda) return def->cuda(ex, &t->attrs, in, t->n_in, out);
    if (fn->device == KB_DEVICE_CUDA) return run_on_host(fn, ex, def, t, in, out);
    return kb_cpu_call(ex, def, &t->attrs, in, t->n_in, out);
}

static kb_status run(kb_function *fn, kb_plan *p, const kb_feed *feeds) {
    const kb_device_api *api = fn->api;
    kb_context *ctx = fn->ctx;
    void **scratch = (void **)calloc((size_t)fn->n_upd + 1, sizeof *scratch);
    kb_status st = scratch ? KB_OK : kb_set_error(KB_ERR_OUT_OF_MEMORY, "kb_function_call: out of host memory");
    for (int k = 0; k < fn->n_nodes && st == KB_OK; ++k) {
        kb_tensor *t = fn->nodes[k];
        const kb_desc *d = &p->desc[k];
        if (is_cut(fn, k)) { /* a body's input: the loop's device buffer, no copy */
            fn->bufs[k] = (void *)feeds[fn->feed_of[k]].data;
            continue;
        }
        if (t->kind == KB_KIND_PLACEHOLDER && t->shape_only) {
            fn->bufs[k] = NULL;
            continue;
        }
        if (t->kind == KB_KIND_PLACEHOLDER) {
            void *dst = (char *)p->arena + p->offset[k];
            fn->bufs[k] = dst;
            size_t nb = desc_bytes(d);
            if (fn->feed_of[k] < 0) { /* the learning phase, not fed: the session's value */
                fn->lp_value = ctx->learning_phase < 0 ? 0 : ctx->learning_phase;
                st = api->copy_h2d(fn->dev, dst, &fn->lp_value, sizeof fn->lp_value);
                continue;
            }
            const kb_feed *f = &feeds[fn->feed_of[k]];
            kb_dtype fdt = f->dtype == KB_FLOATX ? d->dtype : f->dtype;
            if (fdt == d->dtype) {
                st = api->copy_h2d(fn->dev, dst, f->data, nb);
            } else { /* Keras casts fed values to the placeholder's dtype */
                void *tmp = malloc(nb ? nb : 1);
                if (!tmp) st = kb_set_error(KB_ERR_OUT_OF_MEMORY, "kb_function_call: out of host memory");
                else {
                    kb_convert(f->data, fdt, tmp, d->dtype, kb_desc_size(d));
                    st = api->copy_h2d(fn->dev, dst, tmp, nb);
                    if (st == KB_OK) st = api->sync(fn->dev);
                    free(tmp);
                }
            }
            continue;
        }
        if (t->kind != KB_KIND_OP) {
            st = leaf_ptr(fn, t, &fn->bufs[k]);
            continue;
        }
        const kb_op_def *def = kb_op_table[t->op];
        if (def->flags & KB_OPF_ALIAS) {
            fn->bufs[k] = fn->bufs[fn->in_pos[k * KB_MAX_INPUTS]];
            continue;
        }
        fn->bufs[k] = (char *)p->arena + p->offset[k];
        kb_buf in[KB_MAX_INPUTS], out;
        for (int i = 0; i < t->n_in; ++i) {
            int q = fn->in_pos[k * KB_MAX_INPUTS + i];
            make_buf(&in[i], &p->desc[q], fn->bufs[q]);
        }
        make_buf(&out, d, fn->bufs[k]);
        kb_exec ex = {ctx, fn->dev, fn->label[k]};
        api->range_push(fn->dev, fn->label[k]);
        if (!fn->prof_on) {
            st = exec_node(fn, &ex, def, t, in, &out);
        } else {
            st = api->timer_record(fn->dev, fn->prof->tb[k]);
            if (st == KB_OK) st = exec_node(fn, &ex, def, t, in, &out);
            if (st == KB_OK) st = api->timer_record(fn->dev, fn->prof->ta[k]);
        }
        api->range_pop(fn->dev);
    }
    if (fn->body) { /* the loop reads the outputs where they are; no updates, no sync */
        free(scratch);
        return st;
    }
    /* Outputs are fetched lazily: one computed in the plan's arena stays there, untouched until
     * the next call, and is copied to the host only when read (a CPU function hands out the
     * arena itself). An output stored in a variable or constant is copied now, before the
     * updates below or a later set_value can change it. */
    for (int i = 0; i < fn->n_out && st == KB_OK; ++i) {
        int k = fn->out_pos[i];
        fn->out_desc[i] = p->desc[k];
        fn->out_src[i] = fn->bufs[k];
        fn->out_ready[i] = fn->device == KB_DEVICE_CPU && needs_arena(fn, fn->root[k]);
        if (needs_arena(fn, fn->root[k])) continue;
        st = fetch_output(fn, i);
    }
    /* updates, together: a value that lives in another updated variable is copied first */
    for (int u = 0; u < fn->n_upd && st == KB_OK; ++u) {
        int k = fn->upd_pos[u];
        kb_tensor *src = fn->nodes[fn->root[k]];
        if (src->kind != KB_KIND_VARIABLE || src == fn->nodes[k]->in[1]) continue;
        for (int v = 0; v < fn->n_upd; ++v)
            if (fn->nodes[fn->upd_pos[v]]->in[1] == src) {
                size_t nb = desc_bytes(&p->desc[k]);
                st = api->alloc(fn->dev, nb, &scratch[u]);
                if (st == KB_OK) st = api->copy_d2d(fn->dev, scratch[u], fn->bufs[k], nb);
                if (st == KB_OK) fn->bufs[k] = scratch[u];
                break;
            }
    }
    for (int u = 0; u < fn->n_upd && st == KB_OK; ++u) {
        int k = fn->upd_pos[u];
        kb_tensor *var = fn->nodes[k]->in[1];
        if (fn->device == KB_DEVICE_CPU) {
            if (var->host != fn->bufs[k]) memcpy(var->host, fn->bufs[k], var->nbytes);
            var->host_valid = 1;
            var->dev_valid = 0;
        } else {
            if (!var->dev) st = api->alloc(fn->dev, var->nbytes, &var->dev);
            if (st == KB_OK && var->dev != fn->bufs[k]) st = api->copy_d2d(fn->dev, var->dev, fn->bufs[k], var->nbytes);
            var->dev_valid = 1;
            var->host_valid = 0;
        }
    }
    /* Wait for the device only when the caller's feed buffers may still be read by a copy (a
     * pinned buffer is read asynchronously). A call without feeds returns at once, like a
     * PyTorch step: reading an output or a variable waits, and a kernel fault surfaces there or
     * at the next call's wait. */
    kb_status s2 = fn->n_in > 0 || fn->device == KB_DEVICE_CPU ? api->sync(fn->dev) : KB_OK;
    for (int u = 0; scratch && u < fn->n_upd; ++u)
        if (scratch[u]) api->free(fn->dev, scratch[u]);
    free(scratch);
    return st != KB_OK ? st : s2;
}

static kb_status call(kb_function *fn, const kb_feed *feeds, int n_feeds);

/* The caller's feeds with each sparse one replaced by its components' feeds (indices (nnz, rank)
 * int64, values (nnz,), the data-less dense-shape carrier). *out and *dims are malloc'd. */
static kb_status expand_sparse_feeds(const kb_function *fn, const kb_feed *feeds, int n_feeds, kb_feed **out,
                                     int64_t **dims) {
    const char *f = "kb_function_call";
    if (n_feeds != fn->n_user_in)
        return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: the function takes %d inputs, got %d feeds", f, fn->n_user_in,
                            n_feeds);
    if (n_feeds && !feeds) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: feeds is NULL", f);
    kb_feed *x = (kb_feed *)calloc((size_t)fn->n_in, sizeof *x);
    int64_t *d = (int64_t *)calloc((size_t)n_feeds * 3 + 1, sizeof *d);
    if (!x || !d) {
        free(x);
        free(d);
        return kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: out of host memory", f);
    }
    for (int i = 0, j = 0; i < n_feeds; ++i) {
        if (!fn->user_sparse[i]) {
            x[j++] = feeds[i];
            continue;
        }
        const kb_feed *fd = &feeds[i];
        const kb_tensor *values = fn->inputs[j + 1];
        kb_dtype dt = fd->dtype == KB_FLOATX ? values->desc.dtype : fd->dtype;
        size_t es = kb_dtype_size(dt);
        kb_status st = KB_OK;
        if (!es) st = kb_set_error(KB_ERR_DTYPE, "%s: feed %d has an invalid dtype %d", f, i, (int)fd->dtype);
        else if (fd->nbytes % es)
            st = kb_set_error(KB_ERR_SHAPE, "%s: sparse feed %d has %zu bytes of values, not a multiple of %zu (%s)", f, i,
                              fd->nbytes, es, kb_dtype_name(dt));
        else if (fd->nbytes && !fd->indices)
            st = kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: sparse feed %d has values but NULL indices", f, i);
        if (st != KB_OK) {
            free(x);
            free(d);
            return st;
        }
        int64_t *dd = d + 3 * i;
        dd[0] = (int64_t)(fd->nbytes / es); /* nnz */
        dd[1] = fd->rank;
        x[j] = (kb_feed){fd->indices, (size_t)dd[0] * (size_t)fd->rank * sizeof(int64_t), KB_INT64, 2, dd, NULL};
        x[j + 1] = (kb_feed){fd->data, fd->nbytes, dt, 1, dd, NULL};
        x[j + 2] = (kb_feed){NULL, 0, dt, fd->rank, fd->shape, NULL};
        j += 3;
    }
    *out = x;
    *dims = d;
    return KB_OK;
}

kb_status kb_function_call(kb_function *fn, const kb_feed *feeds, int n_feeds) {
    if (!fn) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "kb_function_call: argument fn is NULL");
    if (fn->generation != fn->ctx->generation)
        return kb_set_error(KB_ERR_INVALID_STATE,
                            "kb_function_call: the session was cleared (kb_clear_session) after this function was made");
    if (fn->n_user_in != fn->n_in) {
        kb_feed *x = NULL;
        int64_t *dims = NULL;
        KB_TRY(expand_sparse_feeds(fn, feeds, n_feeds, &x, &dims));
        kb_status st = call(fn, x, fn->n_in);
        free(x);
        free(dims);
        return st;
    }
    return call(fn, feeds, n_feeds);
}

/* The function's profile, made at its first profiled call: each node's op name and device. */
static kb_status make_profile(kb_function *fn) {
    kb_fn_profile *pr = kb_prof_new(fn->ctx, fn->device, fn->api, fn->dev, fn->n_nodes, fn->label);
    if (!pr) return kb_last_status();
    for (int k = 0; k < fn->n_nodes; ++k) {
        const kb_tensor *t = fn->nodes[k];
        if (t->kind != KB_KIND_OP || is_cut(fn, k) || (kb_op_table[t->op]->flags & KB_OPF_ALIAS)) continue;
        const kb_op_def *def = kb_op_table[t->op];
        pr->op[k] = def->name;
        pr->where[k] = fn->device == KB_DEVICE_CPU ? KB_PW_CPU
                       : def->cuda                 ? KB_PW_CUDA
                       : (def->flags & KB_OPF_HOST) ? KB_PW_HOST
                                                    : KB_PW_FALLBACK;
    }
    kb_status st = kb_prof_init(pr);
    if (st != KB_OK) {
        kb_prof_free(pr);
        return st;
    }
    fn->prof = pr;
    return KB_OK;
}

static kb_status call(kb_function *fn, const kb_feed *feeds, int n_feeds) {
    KB_TRY(check_feeds(fn, feeds, n_feeds));
    int prof = fn->ctx->profiling && !fn->no_profile;
    if (prof && !fn->prof) KB_TRY(make_profile(fn));
    if (prof) KB_TRY(kb_prof_begin(fn->prof));
    kb_plan *p;
    KB_TRY(get_plan(fn, feeds, &p));
    fn->api->range_push(fn->dev, "kb_function_call");
    fn->prof_on = prof;
    kb_status st = run(fn, p, feeds);
    fn->prof_on = 0;
    if (prof) {
        kb_status s2 = kb_prof_end(fn->prof, st == KB_OK, p->desc);
        if (st == KB_OK) st = s2;
    }
    fn->api->range_pop(fn->dev);
    fn->has_outputs = st == KB_OK;
    return st;
}

const void *kb_function_output(const kb_function *fn, int i, kb_dtype *dtype, int *rank, int64_t shape[KB_MAX_RANK],
                               size_t *nbytes) {
    if (!fn) {
        kb_null_arg("kb_function_output", "fn");
        return NULL;
    }
    if (i < 0 || i >= fn->n_out) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "kb_function_output: index %d out of range [0, %d)", i, fn->n_out);
        return NULL;
    }
    if (!fn->has_outputs) {
        kb_set_error(KB_ERR_INVALID_STATE, "kb_function_output: the function has not run successfully yet");
        return NULL;
    }
    /* The fetch fills the function's own cache: logically const for the caller. */
    if (!fn->out_ready[i] && fetch_output((kb_function *)fn, i) != KB_OK) return NULL;
    const kb_desc *d = &fn->out_desc[i];
    if (dtype) *dtype = d->dtype;
    if (rank) *rank = d->rank;
    if (shape) memcpy(shape, d->shape, sizeof(int64_t) * (size_t)d->rank);
    if (nbytes) *nbytes = desc_bytes(d);
    return fn->out_src[i];
}

kb_status kb_function_get_output(const kb_function *fn, int i, void *out, size_t nbytes) {
    if (!fn) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "kb_function_get_output: argument fn is NULL");
    size_t nb;
    const void *p = kb_function_output(fn, i, NULL, NULL, NULL, &nb);
    if (!p) return kb_last_status();
    if (nbytes != nb)
        return kb_set_error(KB_ERR_SHAPE, "kb_function_get_output: output %d has %zu bytes, got a buffer of %zu", i, nb,
                            nbytes);
    if (nb && !out) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "kb_function_get_output: argument out is NULL");
    if (nb) memcpy(out, p, nb);
    return KB_OK;
}

kb_status kb_function_get_info(const kb_function *fn, kb_function_info *out) {
    if (!fn) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "kb_function_get_info: argument fn is NULL");
    if (!out) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "kb_function_get_info: argument out is NULL");
    memset(out, 0, sizeof *out);
    out->device = fn->device;
    out->n_nodes = fn->n_nodes;
    for (int k = 0; k < fn->n_nodes; ++k) {
        const kb_tensor *t = fn->nodes[k];
        if (t->kind != KB_KIND_OP || (kb_op_table[t->op]->flags & KB_OPF_ALIAS)) continue;
        out->n_kernels++;
        out->n_host_fallbacks += fn->device == KB_DEVICE_CUDA && !kb_op_table[t->op]->cuda;
    }
    const kb_plan *last = NULL;
    for (const kb_plan *p = fn->plans; p; p = p->next) {
        out->n_plans++;
        if (!last || p->last_used > last->last_used) last = p;
    }
    if (last) {
        out->arena_bytes = last->arena_size;
        for (int k = 0; k < fn->n_nodes; ++k)
            if (needs_arena(fn, k)) out->naive_bytes += (desc_bytes(&last->desc[k]) + KB_ALIGN - 1) / KB_ALIGN * KB_ALIGN;
    }
    return KB_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* eval / get_value                                                                            */

static kb_status leaf_value(const char *fn, kb_tensor *x, void *out, size_t nbytes);

kb_status kb_eval(kb_tensor *x, void *out, size_t nbytes) {
    if (!kb_check_tensor("kb_eval", "x", x)) return kb_last_status();
    if (x->kind == KB_KIND_VARIABLE || x->kind == KB_KIND_CONSTANT) return leaf_value("kb_eval", x, out, nbytes);
    kb_function *fn = kb_function_new(x->ctx, NULL, 0, &x, 1, NULL, 0, KB_DEVICE_AUTO); /* an update op applies */
    if (fn) fn->no_profile = 1; /* a one-shot function: its table would be noise */
    if (!fn) {
        if (kb_last_status() == KB_ERR_INVALID_STATE)
            kb_set_error(KB_ERR_INVALID_STATE, "kb_eval: %s depends on a placeholder; use kb_function_new to feed it",
                         x->name);
        return kb_last_status();
    }
    kb_status st = kb_function_call(fn, NULL, 0);
    if (st == KB_OK) {
        size_t nb;
        const void *p = kb_function_output(fn, 0, NULL, NULL, NULL, &nb);
        if (nbytes != nb) {
            char s[128];
            st = kb_set_error(KB_ERR_SHAPE, "kb_eval: %s has shape %s of %s = %zu bytes, got a buffer of %zu", x->name,
                              kb_shape_str(&fn->out_desc[0], s, sizeof s), kb_dtype_name(x->desc.dtype), nb, nbytes);
        } else if (nb && !out) {
            st = kb_set_error(KB_ERR_INVALID_ARGUMENT, "kb_eval: argument out is NULL");
        } else if (nb) {
            memcpy(out, p, nb);
        }
    }
    kb_function_free(fn);
    return st;
}

static kb_status leaf_value(const char *fn, kb_tensor *x, void *out, size_t nbytes) {
    if (nbytes != x->nbytes) {
        char s[128];
        return kb_set_error(KB_ERR_SHAPE, "%s: %s has shape %s of %s = %zu bytes, got a buffer of %zu", fn, x->name,
                            kb_shape_str(&x->desc, s, sizeof s), kb_dtype_name(x->desc.dtype), x->nbytes, nbytes);
    }
    if (nbytes && !out) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: argument out is NULL", fn);
    KB_TRY(kb_leaf_sync_host(x));
    if (nbytes) memcpy(out, x->host, nbytes);
    return KB_OK;
}

kb_status kb_get_value(kb_tensor *x, void *out, size_t nbytes) {
    if (!kb_check_tensor("kb_get_value", "x", x)) return kb_last_status();
    if (x->kind != KB_KIND_VARIABLE && x->kind != KB_KIND_CONSTANT) return kb_eval(x, out, nbytes);
    return leaf_value("kb_get_value", x, out, nbytes);
}

kb_status kb_batch_get_value(kb_tensor *const *xs, int n, void *const *outs, const size_t *nbytes) {
    const char *fn = "kb_batch_get_value";
    if (n < 0) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: negative count %d", fn, n);
    if (n > 0 && !xs) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: argument xs is NULL", fn);
    if (n > 0 && !outs) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: argument outs is NULL", fn);
    if (n > 0 && !nbytes) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: argument nbytes is NULL", fn);
    for (int i = 0; i < n; ++i) KB_TRY(kb_get_value(xs[i], outs[i], nbytes[i]));
    return KB_OK;
}

kb_status kb_function_run_body(kb_function *fn, void *const *cut_data, const kb_desc *cut_desc, void **out_data,
                               kb_desc *out_desc) {
    if (fn->generation != fn->ctx->generation)
        return kb_set_error(KB_ERR_INVALID_STATE, "loop body: the session was cleared after the loop was made");
    kb_feed stackf[16] = {{0}}, *feeds = fn->n_in <= 16 ? stackf : (kb_feed *)calloc((size_t)fn->n_in, sizeof *feeds);
    if (!feeds) return kb_set_error(KB_ERR_OUT_OF_MEMORY, "loop body: out of host memory");
    for (int i = 0; i < fn->n_in; ++i) {
        feeds[i].data = cut_data[i];
        feeds[i].nbytes = desc_bytes(&cut_desc[i]);
        feeds[i].dtype = cut_desc[i].dtype;
        feeds[i].rank = cut_desc[i].rank;
        feeds[i].shape = cut_desc[i].shape;
        feeds[i].indices = NULL;
    }
    kb_plan *p;
    kb_status st = get_plan(fn, feeds, &p);
    if (st == KB_OK) st = run(fn, p, feeds);
    for (int i = 0; i < fn->n_out && st == KB_OK; ++i) {
        out_data[i] = fn->bufs[fn->out_pos[i]];
        out_desc[i] = p->desc[fn->out_pos[i]];
    }
    if (feeds != stackf) free(feeds);
    return st;
}
