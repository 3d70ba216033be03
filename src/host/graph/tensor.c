/* Tensors: leaves (placeholder, variable, constant), op nodes, predicates and introspection. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/error.h"
#include "graph/tensor.h"

kb_dtype kb_resolve_dtype(const kb_context *ctx, kb_dtype dt) { return dt == KB_FLOATX ? ctx->cfg.floatx : dt; }

int kb_check_tensor(const char *fn, const char *arg, const kb_tensor *t) {
    if (!t) {
        kb_null_arg(fn, arg);
        return 0;
    }
    if (t->magic != KB_TENSOR_MAGIC) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: argument %s is not a live kb tensor", fn, arg);
        return 0;
    }
    return 1;
}

const char *kb_shape_str(const kb_desc *d, char *buf, size_t n) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n - k, "(");
    for (int i = 0; i < d->rank && k < n; ++i) {
        if (d->shape[i] == KB_NONE) k += (size_t)snprintf(buf + k, n - k, "%sNone", i ? ", " : "");
        else k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)d->shape[i]);
    }
    if (k < n) snprintf(buf + k, n - k, d->rank == 1 ? ",)" : ")");
    return buf;
}

static kb_tensor *tensor_alloc(kb_context *ctx, kb_kind kind, const char *base, const char *name) {
    if (ctx->n_tensors == ctx->cap_tensors) {
        int64_t cap = ctx->cap_tensors ? ctx->cap_tensors * 2 : 256;
        kb_tensor **t = (kb_tensor **)realloc(ctx->tensors, sizeof *t * (size_t)cap);
        if (!t) {
            kb_set_error(KB_ERR_OUT_OF_MEMORY, "kb: out of host memory growing the graph");
            return NULL;
        }
        ctx->tensors = t;
        ctx->cap_tensors = cap;
    }
    kb_tensor *t = (kb_tensor *)calloc(1, sizeof *t);
    if (!t) {
        kb_set_error(KB_ERR_OUT_OF_MEMORY, "kb: out of host memory making a tensor");
        return NULL;
    }
    t->magic = KB_TENSOR_MAGIC;
    t->ctx = ctx;
    t->kind = kind;
    t->id = ctx->n_tensors;
    if (name && *name) snprintf(t->name, sizeof t->name, "%s", name);
    else snprintf(t->name, sizeof t->name, "%s_%lld", base, (long long)t->id);
    ctx->tensors[ctx->n_tensors++] = t;
    return t;
}

static void tensor_free(kb_context *ctx, kb_tensor *t) {
    if (t->ext_free) t->ext_free(t->ext);
    if (t->dev && ctx->cuda_api) ctx->cuda_api->free(ctx->cuda_dev, t->dev);
    free(t->host);
    free(t->attrs.message);
    t->magic = 0;
    free(t);
}

void kb_tensors_free_all(kb_context *ctx) {
    for (int64_t i = 0; i < ctx->n_tensors; ++i) tensor_free(ctx, ctx->tensors[i]);
    ctx->n_tensors = 0;
}

kb_tensor *kb_node(const char *fn, kb_op_id op, kb_tensor *const *in, int n_in, const kb_attrs *a) {
    static const char *const argn[KB_MAX_INPUTS] = {"x",   "y",   "z",   "w",    "in4",  "in5",  "in6",  "in7",
                                                     "in8", "in9", "in10", "in11", "in12", "in13", "in14", "in15"};
    kb_context *ctx = NULL;
    if (n_in < 0 || n_in > KB_MAX_INPUTS) {
        kb_set_error(KB_ERR_INTERNAL, "%s: %d inputs (at most %d)", fn, n_in, KB_MAX_INPUTS);
        return NULL;
    }
    for (int i = 0; i < n_in; ++i) {
        if (!kb_check_tensor(fn, argn[i], in[i])) return NULL;
        if (ctx && in[i]->ctx != ctx) {
            kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: tensors %s and %s belong to different contexts", fn,
                         in[0]->name, in[i]->name);
            return NULL;
        }
        ctx = in[i]->ctx;
    }
    const kb_op_def *def = kb_op_table[op];
    if (kb_op_variadic(op) ? n_in < def->n_inputs : n_in != def->n_inputs) {
        kb_set_error(KB_ERR_INTERNAL, "%s: %s takes %d inputs, got %d", fn, def->name, def->n_inputs, n_in);
        return NULL;
    }
    kb_desc d[KB_MAX_INPUTS], out;
    for (int i = 0; i < n_in; ++i) d[i] = in[i]->desc;
    kb_attrs attrs;
    if (a) attrs = *a;
    else memset(&attrs, 0, sizeof attrs);
    memset(&out, 0, sizeof out);
    if (def->infer(fn, &attrs, d, n_in, &out) != KB_OK || kb_check_size(fn, &out) != KB_OK) return NULL;
    kb_tensor *t = tensor_alloc(ctx, KB_KIND_OP, def->name, NULL);
    if (!t) return NULL;
    t->op = op;
    t->n_in = n_in;
    for (int i = 0; i < n_in; ++i) t->in[i] = in[i];
    t->attrs = attrs;
    if (attrs.message) t->attrs.message = strdup(attrs.message);
    t->desc = out;
    return t;
}

int kb_op_variadic(kb_op_id op) { return op == KB_OP_LOOP || op == KB_OP_LOOP_PART || op == KB_OP_LOOP_PART_GRAD; }

kb_tensor *kb_node1(const char *fn, kb_op_id op, kb_tensor *x) { return kb_node(fn, op, &x, 1, NULL); }
kb_tensor *kb_node2(const char *fn, kb_op_id op, kb_tensor *x, kb_tensor *y) {
    kb_tensor *in[2] = {x, y};
    return kb_node(fn, op, in, 2, NULL);
}

static int check_shape(const char *fn, const int64_t *shape, int rank, int allow_none, kb_desc *d) {
    if (rank < 0 || rank > KB_MAX_RANK) {
        kb_set_error(KB_ERR_SHAPE, "%s: rank %d is out of range [0, %d]", fn, rank, KB_MAX_RANK);
        return 0;
    }
    if (rank > 0 && !shape && !allow_none) {
        kb_null_arg(fn, "shape");
        return 0;
    }
    d->rank = rank;
    for (int i = 0; i < rank; ++i) {
        int64_t s = shape ? shape[i] : KB_NONE;
        if (s < 0 && !(allow_none && s == KB_NONE)) {
            kb_set_error(KB_ERR_SHAPE, "%s: dimension %d is %lld; dimensions must be >= 0%s", fn, i, (long long)s,
                         allow_none ? " or KB_NONE" : "");
            return 0;
        }
        d->shape[i] = s;
    }
    return 1;
}

static int check_dtype(const char *fn, kb_context *ctx, kb_dtype *dt) {
    *dt = kb_resolve_dtype(ctx, *dt);
    if (!kb_dtype_valid(*dt)) {
        kb_set_error(KB_ERR_DTYPE, "%s: invalid dtype %d", fn, (int)*dt);
        return 0;
    }
    return 1;
}

/* Variable and constant storage from user data: full size, or (fill_ok) one element repeated. */
static kb_tensor *make_leaf(const char *fn, kb_context *ctx, kb_kind kind, const void *data, size_t nbytes,
                            kb_dtype dtype, const int64_t *shape, int rank, const char *name, int fill_ok) {
    if (!ctx) {
        kb_null_arg(fn, "ctx");
        return NULL;
    }
    kb_desc d;
    memset(&d, 0, sizeof d);
    if (!check_dtype(fn, ctx, &dtype) || !check_shape(fn, shape, rank, 0, &d)) return NULL;
    d.dtype = dtype;
    if (kb_check_size(fn, &d) != KB_OK) return NULL;
    int64_t n = kb_desc_size(&d);
    size_t es = kb_dtype_size(dtype), total = (size_t)n * es;
    if (data && nbytes != total && !(fill_ok && nbytes == es)) {
        char s[128];
        kb_set_error(KB_ERR_SHAPE, "%s: got %zu bytes, shape %s of %s needs %zu%s", fn, nbytes, kb_shape_str(&d, s, sizeof s),
                     kb_dtype_name(dtype), total, fill_ok ? " (or one element to fill it)" : "");
        return NULL;
    }
    void *host = malloc(total ? total : 1);
    if (!host) {
        kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: out of host memory allocating %zu bytes", fn, total);
        return NULL;
    }
    if (!data) memset(host, 0, total);
    else if (nbytes == total) memcpy(host, data, total);
    else
        for (int64_t i = 0; i < n; ++i) memcpy((char *)host + (size_t)i * es, data, es);
    kb_tensor *t = tensor_alloc(ctx, kind, kind == KB_KIND_VARIABLE ? "variable" : "constant", name);
    if (!t) {
        free(host);
        return NULL;
    }
    t->desc = d;
    t->host = host;
    t->nbytes = total;
    t->host_valid = 1;
    return t;
}

kb_tensor *kb_variable(kb_context *ctx, const void *data, size_t nbytes, kb_dtype dtype, const int64_t *shape,
                       int rank, const char *name) {
    return make_leaf("kb_variable", ctx, KB_KIND_VARIABLE, data, nbytes, dtype, shape, rank, name, 0);
}

kb_tensor *kb_constant(kb_context *ctx, const void *data, size_t nbytes, kb_dtype dtype, const int64_t *shape,
                       int rank, const char *name) {
    if (!data) {
        kb_null_arg("kb_constant", "data");
        return NULL;
    }
    return make_leaf("kb_constant", ctx, KB_KIND_CONSTANT, data, nbytes, dtype, shape, rank, name, 1);
}

kb_tensor *kb_constant_scalar(kb_context *ctx, double value, kb_dtype dtype, const int64_t *shape, int rank) {
    if (!ctx) {
        kb_null_arg("kb_constant_scalar", "ctx");
        return NULL;
    }
    if (!check_dtype("kb_constant_scalar", ctx, &dtype)) return NULL;
    unsigned char v[8];
    kb_store_f64(v, dtype, 0, value);
    return make_leaf("kb_constant_scalar", ctx, KB_KIND_CONSTANT, v, kb_dtype_size(dtype), dtype, shape, rank, NULL, 1);
}

kb_tensor *kb_scalar(kb_context *ctx, double v, kb_dtype dt) { return kb_constant_scalar(ctx, v, dt, NULL, 0); }

kb_tensor *kb_placeholder(kb_context *ctx, const int64_t *shape, int rank, kb_dtype dtype, const char *name) {
    const char *fn = "kb_placeholder";
    if (!ctx) {
        kb_null_arg(fn, "ctx");
        return NULL;
    }
    kb_desc d;
    memset(&d, 0, sizeof d);
    if (!check_dtype(fn, ctx, &dtype) || !check_shape(fn, shape, rank, 1, &d)) return NULL;
    d.dtype = dtype;
    if (kb_check_size(fn, &d) != KB_OK) return NULL;
    kb_tensor *t = tensor_alloc(ctx, KB_KIND_PLACEHOLDER, "placeholder", name);
    if (t) t->desc = d;
    return t;
}

kb_tensor *kb_learning_phase(kb_context *ctx) {
    if (!ctx) {
        kb_null_arg("kb_learning_phase", "ctx");
        return NULL;
    }
    if (!ctx->learning_phase_tensor) {
        kb_tensor *t = kb_placeholder(ctx, NULL, 0, KB_INT32, "keras_learning_phase");
        if (!t) return NULL;
        t->is_learning_phase = 1;
        ctx->learning_phase_tensor = t;
    }
    return ctx->learning_phase_tensor;
}

static kb_tensor *filled_variable(const char *fn, kb_context *ctx, const int64_t *shape, int rank, kb_dtype dtype,
                                  const char *name, double v) {
    if (!ctx) {
        kb_null_arg(fn, "ctx");
        return NULL;
    }
    if (!check_dtype(fn, ctx, &dtype)) return NULL;
    unsigned char e[8];
    kb_store_f64(e, dtype, 0, v);
    return make_leaf(fn, ctx, KB_KIND_VARIABLE, e, kb_dtype_size(dtype), dtype, shape, rank, name, 1);
}

kb_tensor *kb_zeros(kb_context *ctx, const int64_t *shape, int rank, kb_dtype dtype, const char *name) {
    return filled_variable("kb_zeros", ctx, shape, rank, dtype, name, 0.0);
}
kb_tensor *kb_ones(kb_context *ctx, const int64_t *shape, int rank, kb_dtype dtype, const char *name) {
    return filled_variable("kb_ones", ctx, shape, rank, dtype, name, 1.0);
}

kb_tensor *kb_eye(kb_context *ctx, int64_t n, int64_t m, kb_dtype dtype, const char *name) {
    const char *fn = "kb_eye";
    if (!ctx) {
        kb_null_arg(fn, "ctx");
        return NULL;
    }
    if (n < 0 || m < 0) {
        kb_set_error(KB_ERR_SHAPE, "%s: size (%lld, %lld) must be >= 0", fn, (long long)n, (long long)m);
        return NULL;
    }
    if (!check_dtype(fn, ctx, &dtype)) return NULL;
    int64_t shape[2] = {n, m};
    kb_tensor *t = make_leaf(fn, ctx, KB_KIND_CONSTANT, NULL, 0, dtype, shape, 2, name, 0);
    if (t)
        for (int64_t i = 0; i < n && i < m; ++i) kb_store_f64(t->host, dtype, i * m + i, 1.0);
    return t;
}

int kb_is_variable(const kb_tensor *x) { return x && x->magic == KB_TENSOR_MAGIC && x->kind == KB_KIND_VARIABLE; }
int kb_is_tensor(const kb_tensor *x) { return x && x->magic == KB_TENSOR_MAGIC; }
int kb_is_placeholder(const kb_tensor *x) { return x && x->magic == KB_TENSOR_MAGIC && x->kind == KB_KIND_PLACEHOLDER; }
int kb_is_keras_tensor(const kb_tensor *x) {
    (void)kb_check_tensor("kb_is_keras_tensor", "x", x);
    return 0;
}

int kb_int_shape(const kb_tensor *x, int64_t shape_out[KB_MAX_RANK]) {
    if (!kb_check_tensor("kb_int_shape", "x", x)) return -1;
    if (!shape_out) {
        kb_null_arg("kb_int_shape", "shape_out");
        return -1;
    }
    for (int i = 0; i < x->desc.rank; ++i) shape_out[i] = x->desc.shape[i];
    return x->desc.rank;
}

int kb_ndim(const kb_tensor *x) { return kb_check_tensor("kb_ndim", "x", x) ? x->desc.rank : -1; }
kb_dtype kb_dtype_of(const kb_tensor *x) { return kb_check_tensor("kb_dtype_of", "x", x) ? x->desc.dtype : KB_FLOATX; }
const char *kb_tensor_name(const kb_tensor *x) { return kb_check_tensor("kb_tensor_name", "x", x) ? x->name : ""; }

int64_t kb_count_params(const kb_tensor *x) {
    if (!kb_check_tensor("kb_count_params", "x", x)) return -1;
    int64_t n = kb_desc_size(&x->desc);
    if (n < 0) {
        char s[128];
        kb_set_error(KB_ERR_SHAPE, "kb_count_params: %s has unknown dimensions %s", x->name, kb_shape_str(&x->desc, s, sizeof s));
    }
    return n;
}

kb_status kb_leaf_sync_host(kb_tensor *t) {
    if (t->host_valid) return KB_OK;
    kb_context *ctx = t->ctx;
    if (!t->dev || !t->dev_valid || !ctx->cuda_api)
        return kb_set_error(KB_ERR_INTERNAL, "kb: %s has no valid copy", t->name);
    KB_TRY(ctx->cuda_api->copy_d2h(ctx->cuda_dev, t->host, t->dev, t->nbytes));
    KB_TRY(ctx->cuda_api->sync(ctx->cuda_dev));
    t->host_valid = 1;
    return KB_OK;
}

static kb_status check_value_bytes(const char *fn, const kb_tensor *x, size_t nbytes) {
    if (nbytes != x->nbytes) {
        char s[128];
        return kb_set_error(KB_ERR_SHAPE, "%s: %s has shape %s of %s = %zu bytes, got %zu", fn, x->name,
                            kb_shape_str(&x->desc, s, sizeof s), kb_dtype_name(x->desc.dtype), x->nbytes, nbytes);
    }
    return KB_OK;
}

kb_status kb_set_value(kb_tensor *var, const void *data, size_t nbytes) {
    const char *fn = "kb_set_value";
    if (!kb_check_tensor(fn, "var", var)) return kb_last_status();
    if (var->kind != KB_KIND_VARIABLE)
        return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: %s is not a variable", fn, var->name);
    if (!data && nbytes) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: argument data is NULL", fn);
    KB_TRY(check_value_bytes(fn, var, nbytes));
    if (nbytes) memcpy(var->host, data, nbytes);
    var->host_valid = 1;
    var->dev_valid = 0;
    return KB_OK;
}

kb_status kb_batch_set_value(kb_tensor *const *vars, int n, const void *const *data, const size_t *nbytes) {
    const char *fn = "kb_batch_set_value";
    if (n < 0) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: negative count %d", fn, n);
    if (n > 0 && !vars) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: argument vars is NULL", fn);
    if (n > 0 && !data) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: argument data is NULL", fn);
    if (n > 0 && !nbytes) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: argument nbytes is NULL", fn);
    for (int i = 0; i < n; ++i) { /* check all before writing any */
        if (!kb_check_tensor(fn, "vars[i]", vars[i])) return kb_last_status();
        if (vars[i]->kind != KB_KIND_VARIABLE)
            return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: vars[%d] (%s) is not a variable", fn, i, vars[i]->name);
        if (!data[i] && nbytes[i]) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: data[%d] is NULL", fn, i);
        KB_TRY(check_value_bytes(fn, vars[i], nbytes[i]));
    }
    for (int i = 0; i < n; ++i) KB_TRY(kb_set_value(vars[i], data[i], nbytes[i]));
    return KB_OK;
}
