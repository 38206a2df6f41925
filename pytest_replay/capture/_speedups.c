/* The C accelerator of @traced: the common case of a sync call, in C.
 *
 * The pure-Python wrapper in traced.py is the reference. This object does
 * the same thing, byte for byte, for the common case only: capture active,
 * positional arguments, success or an exception. Everything else is handed
 * to the Python wrapper or to the Python pieces it uses:
 *
 *   - keyword arguments: the whole call goes to the Python wrapper;
 *   - configuration changes: CallSite.refresh() (Python) rebuilds the
 *     templates, which are then copied here (one "plan" per generation);
 *   - top-level calls: Runtime.open_root() (Python) decides sampling and ids;
 *   - arguments and results other than plain scalars: the site's own
 *     positional_json / result_json (Python). Plain scalars are written here:
 *     None, booleans and 64-bit integers as JSON has them; floats and ASCII
 *     strings only where this module provably writes what orjson writes (the
 *     shortest round-trip decimal; characters orjson does not escape, as
 *     orjson itself answers at install), everything else by orjson.dumps;
 *   - errors: the Python _record_failure writes the error and exit events,
 *     after a traceback entry for this wrapper was added, exactly where the
 *     Python wrapper's own frame would have been;
 *   - a failure of capture itself: the Python _capture_failed counts it and
 *     the call runs uncaptured, as in the Python wrapper.
 *
 * Nothing is cached across calls except the plan; no Python object outlives
 * the call but the lines handed to the sink.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
#include <math.h>
#include <stddef.h>
#include <time.h>

#ifdef Py_GIL_DISABLED
#error "the accelerator relies on the GIL; free-threaded builds use the pure-Python wrapper"
#endif

#if PY_VERSION_HEX >= 0x030C0000
#define SLOT_OBJECT Py_T_OBJECT_EX
#define SLOT_READONLY Py_READONLY
#else
#include <structmember.h>
#define SLOT_OBJECT T_OBJECT_EX
#define SLOT_READONLY READONLY
#endif

/* Bumped whenever what traced.py and this module expect of each other changes: a build
 * left over from an older source is then refused at import (pure Python runs instead). */
#define INTERFACE 3

/* ------------------------------------------------------------------------------------ */
/* What install() hands over once: the runtime and the Python pieces called back.        */

static PyObject *g_runtime;        /* RUNTIME */
static PyObject *g_ids;            /* IDS (its .ids iterator is read on every call) */
static PyObject *g_frame_var;      /* CURRENT_FRAME */
static PyObject *g_dumps;          /* orjson.dumps */
static PyObject *g_value_json;     /* callsite.value_json: results it encodes may be done here */
static PyObject *g_capture_failed; /* traced._capture_failed(exc) */
static PyObject *g_record_failure; /* traced._record_failure(site, cid_b, started, exc) */
static PyObject *g_unsampled;      /* UNSAMPLED */
static PyObject *g_marker_code;    /* the code object tracebacks show for this wrapper */
static PyObject *g_marker_globals;
static Py_ssize_t g_min_scanned;   /* redact.MIN_SCANNED */

static PyObject *s_active, *s_generation, *s_write, *s_ids, *s_open_root, *s_sink_failed,
    *s_epoch, *s_stale_exit, *s_refresh, *s_field, *s_entry_parts, *s_root_parts, *s_exit_parts, *s_arg_keys,
    *s_positional_json, *s_result_json, *s_max_str, *s_secret_text, *s_qualname;

static PyObject *b_null, *b_true, *b_false, *b_empty_args;

/* The slots read on every call, when the objects are slotted as expected: reading the
 * member directly skips the type lookup of getattr. NULL: getattr is used. */
static PyMemberDef *m_active, *m_generation, *m_write, *m_ids, *m_field, *m_epoch;
static PyObject *g_trace_type;     /* TraceRef: its "field" slot is read on nested calls */

static int g_fast_floats;              /* format_float agrees with orjson (checked at install) */
static unsigned char g_escaped[128];   /* ASCII characters orjson escapes (asked at install) */
static int g_fast_strings;

static PyTypeObject IdsType;

/* The interpreter install() serves (its id; -1 before). The state above is per process, and
 * so is this module's (single-phase init): a subinterpreter (mod_wsgi's, say) that imports it
 * again shares it, so install() refuses there and that interpreter runs pure Python, rather
 * than have every wrapper write through another interpreter's runtime. */
static int64_t g_interpreter = -1;

/* ------------------------------------------------------------------------------------ */
/* Small helpers                                                                         */

static long long
now_ns(void)
{
    struct timespec ts;
    if (timespec_get(&ts, TIME_UTC) != TIME_UTC) {
        return 0;
    }
    return (long long)ts.tv_sec * 1000000000LL + (long long)ts.tv_nsec;
}

static const char PAIRS[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* Decimal digits of u, written backwards from end (at least 20 bytes before it); returns
 * the start. Two digits per step, in 32-bit chunks of eight: timestamps have nineteen. */
static char *
format_unsigned(unsigned long long u, char *end)
{
    char *p = end;
    while (u >= 100000000ULL) {
        unsigned int chunk = (unsigned int)(u % 100000000ULL);
        u /= 100000000ULL;
        for (int i = 0; i < 4; i++) {
            p -= 2;
            memcpy(p, PAIRS + 2 * (chunk % 100), 2);
            chunk /= 100;
        }
    }
    unsigned int rest = (unsigned int)u;
    while (rest >= 100) {
        p -= 2;
        memcpy(p, PAIRS + 2 * (rest % 100), 2);
        rest /= 100;
    }
    if (rest >= 10) {
        p -= 2;
        memcpy(p, PAIRS + 2 * rest, 2);
    }
    else {
        *--p = (char)('0' + rest);
    }
    return p;
}

static char *
format_signed(long long v, char *end)
{
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    char *p = format_unsigned(u, end);
    if (v < 0) {
        *--p = '-';
    }
    return p;
}

static const double POW10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                1e12, 1e13, 1e14, 1e15, 1e16, 1e17};
static const unsigned long long IPOW10[] = {
    1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL, 100000000ULL,
    1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL, 10000000000000ULL,
    100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL, 100000000000000000ULL};
#define TWO_53 9007199254740992.0

/* A finite double as orjson writes it, when that is provably one string: the shortest
 * decimal that reads back as the same double, in orjson's layout for 1e-5 <= |d| < 1e15
 * (digits, a point, at least one decimal: 100.0, 0.08). Fills out (>= 40 bytes) and
 * returns the length, or 0 to let orjson write it.
 *
 * For k = 0, 1, 2... decimals, the integers c with c / 10**k == |d| once rounded are the
 * decimals of k digits that read back as d; both c < 2**53 and 10**k are exact doubles, so
 * the division is one correctly rounded operation: the test is exact. They lie within
 * 10**k ulps of |d| * 10**k, so among m - 1, m, m + 1 for m its nearest integer; when
 * 10**k ulps are less than 1 there is at most one of them. The first k with exactly one
 * such c gives the shortest representation, which is unique: every shortest round-trip
 * algorithm (orjson's included) prints it. Two candidates, or c past 2**53: orjson
 * decides. install() checks the layout against orjson itself. */
static int
format_float(double d, char *out)
{
    double a = fabs(d);
    int n = 0;
    if (a == 0.0) {
        if (signbit(d)) {
            out[n++] = '-';
        }
        memcpy(out + n, "0.0", 3);
        return n + 3;
    }
    if (!(a >= 1e-5 && a < 1e15)) {
        return 0;
    }
    unsigned long long bits;
    memcpy(&bits, &a, sizeof bits);
    bits++;
    double above;
    memcpy(&above, &bits, sizeof above);
    double ulp = above - a; /* a is finite, positive and below 1e15: bits + 1 is the next double */
    for (int k = 0; k <= 17; k++) {
        double scaled = a * POW10[k];
        if (scaled >= TWO_53 - 2.0) {
            return 0;
        }
        unsigned long long m = (unsigned long long)(scaled + 0.5), found = 0;
        double spread = ulp * POW10[k];
        /* A candidate lies within half an ulp (times 10**k) of a * 10**k, and the product is
         * off by at most half an ulp of itself: further from m than twice both, none does. */
        if (fabs(scaled - (double)m) > 2.0 * (spread + scaled * 0x1p-52)) {
            continue;
        }
        int hits = 0;
        if (spread < 1.0 && (double)m / POW10[k] == a) {
            found = m; /* the only one there can be */
            hits = 1;
        }
        else {
            for (unsigned long long c = m ? m - 1 : 0; c <= m + 1; c++) {
                if ((double)c / POW10[k] == a) {
                    found = c;
                    hits++;
                }
            }
        }
        if (hits > 1) {
            return 0;
        }
        if (hits == 1) {
            char digits[24];
            char *end = digits + sizeof digits;
            unsigned long long whole = found / IPOW10[k], frac = found % IPOW10[k];
            if (d < 0) {
                out[n++] = '-';
            }
            char *start = format_unsigned(whole, end);
            memcpy(out + n, start, (size_t)(end - start));
            n += (int)(end - start);
            out[n++] = '.';
            if (k == 0) {
                out[n++] = '0';
                return n;
            }
            for (int i = k - 1; i >= 0; i--) {
                out[n + i] = (char)('0' + frac % 10);
                frac /= 10;
            }
            return n + k;
        }
    }
    return 0;
}

/* Whether orjson writes this ASCII string as its characters between quotes. */
static int
ascii_verbatim(PyObject *value)
{
    if (!g_fast_strings || !PyUnicode_IS_ASCII(value)) {
        return 0;
    }
    const unsigned char *p = (const unsigned char *)PyUnicode_DATA(value);
    Py_ssize_t size = PyUnicode_GET_LENGTH(value);
    for (Py_ssize_t i = 0; i < size; i++) {
        if (g_escaped[p[i]]) {
            return 0;
        }
    }
    return 1;
}

/* The raised exception, normalized, with its traceback attached; NULL if none. */
static PyObject *
take_exception(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL) {
        return NULL;
    }
    PyErr_NormalizeException(&type, &value, &tb);
    if (value == NULL) {
        value = Py_NewRef(Py_None);
    }
    if (tb != NULL && PyExceptionInstance_Check(value)) {
        PyException_SetTraceback(value, tb);
    }
    Py_XDECREF(tb);
    Py_DECREF(type);
    return value;
#endif
}

/* Raise exc again (steals the reference). */
static void
give_exception(PyObject *exc)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyObject *tb = PyExceptionInstance_Check(exc) ? PyException_GetTraceback(exc) : NULL;
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, tb);
#endif
}

/* Add this wrapper to the traceback of the exception being raised, where the Python
 * wrapper's frame would be: traced._recorded_below() and people reading tracebacks
 * see the same thing on both paths. Best effort: the exception is never replaced. */
static void
mark_traceback(void)
{
    if (g_marker_code == NULL) {
        return;
    }
    PyObject *exc = take_exception();
    if (exc == NULL) {
        return;
    }
    PyFrameObject *frame = PyFrame_New(PyThreadState_Get(), (PyCodeObject *)g_marker_code,
                                       g_marker_globals, NULL);
    if (frame == NULL) {
        PyErr_Clear();
        give_exception(exc);
        return;
    }
    Py_INCREF(exc);
    give_exception(exc);
    if (PyTraceBack_Here(frame) < 0) {
        PyErr_Clear();
        give_exception(exc);
    }
    else {
        Py_DECREF(exc);
    }
    Py_DECREF(frame);
}

/* obj.name, through its slot when the type has one (new reference, or NULL with an
 * exception set). */
static inline PyObject *
read_slot(PyObject *obj, PyMemberDef *member, PyObject *name)
{
    if (member != NULL) {
        /* A plain object slot (find_slot checked): read it as PyMember_GetOne would,
         * without its generic dispatch; an empty slot takes that path for its error. */
        PyObject *value = *(PyObject **)((char *)obj + member->offset);
        if (value != NULL) {
            return Py_NewRef(value);
        }
        return PyMember_GetOne((const char *)obj, member);
    }
    return PyObject_GetAttr(obj, name);
}

/* The slot `name` of a type, if it is a plain object slot (else NULL). */
static PyMemberDef *
find_slot(PyObject *type, PyObject *name)
{
    PyObject *descriptor = PyObject_GetAttr(type, name);
    if (descriptor == NULL) {
        PyErr_Clear();
        return NULL;
    }
    PyMemberDef *member = NULL;
    if (Py_IS_TYPE(descriptor, &PyMemberDescr_Type)) {
        member = ((PyMemberDescrObject *)descriptor)->d_member;
        if (member->type != SLOT_OBJECT || (member->flags & SLOT_READONLY)) {
            member = NULL;
        }
    }
    Py_DECREF(descriptor); /* the type keeps it, and so the member definition, alive */
    return member;
}

/* Truth of a runtime attribute: 1, 0, or -1 with an exception set. */
static int
runtime_flag(PyMemberDef *member, PyObject *name)
{
    PyObject *value = read_slot(g_runtime, member, name);
    if (value == NULL) {
        return -1;
    }
    int on = value == Py_True ? 1 : value == Py_False ? 0 : PyObject_IsTrue(value);
    Py_DECREF(value);
    return on;
}

/* ------------------------------------------------------------------------------------ */
/* Ids: prefix + hex counter, as bytes (the C twin of ids.py's map over itertools.count) */

typedef struct {
    PyObject_HEAD
    PyObject *prefix; /* bytes */
    unsigned long long next;
} IdsObject;

static PyObject *
ids_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *prefix;
    static char *names[] = {"prefix", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!:Ids", names, &PyBytes_Type, &prefix)) {
        return NULL;
    }
    IdsObject *self = (IdsObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->prefix = Py_NewRef(prefix);
    self->next = 1;
    return (PyObject *)self;
}

static void
ids_dealloc(IdsObject *self)
{
    Py_XDECREF(self->prefix);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
ids_next(IdsObject *self)
{
    static const char hex[] = "0123456789abcdef";
    char digits[16];
    int count = 0;
    unsigned long long n = self->next++;
    do {
        digits[count++] = hex[n & 15];
        n >>= 4;
    } while (n);
    Py_ssize_t size = PyBytes_GET_SIZE(self->prefix);
    PyObject *out = PyBytes_FromStringAndSize(NULL, size + count);
    if (out == NULL) {
        return NULL;
    }
    char *p = PyBytes_AS_STRING(out);
    memcpy(p, PyBytes_AS_STRING(self->prefix), (size_t)size);
    p += size;
    while (count) {
        *p++ = digits[--count];
    }
    return out;
}

static PyTypeObject IdsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pytest_replay.capture._speedups.Ids",
    .tp_basicsize = sizeof(IdsObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Ids(prefix): an iterator of prefix + hex counter (1, 2, ...) as bytes.",
    .tp_new = ids_new,
    .tp_dealloc = (destructor)ids_dealloc,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)ids_next,
};

/* ------------------------------------------------------------------------------------ */
/* LineQueue: BufferedSink.write in C (buffered.py's write is the reference).            */

typedef struct {
    PyObject_HEAD
    PyObject *buffer;      /* the sink's queue (a list) */
    Py_ssize_t soft_limit; /* below it, a line is appended and that is all */
    PyObject *crowded;     /* the sink's _write_crowded, for everything else */
} LineQueueObject;

static PyObject *
line_queue_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *buffer, *crowded;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "LineQueue() takes no keyword arguments");
        return NULL;
    }
    Py_ssize_t soft_limit;
    if (!PyArg_ParseTuple(args, "O!nO:LineQueue", &PyList_Type, &buffer, &soft_limit,
                          &crowded)) {
        return NULL;
    }
    LineQueueObject *self = (LineQueueObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->buffer = Py_NewRef(buffer);
    self->soft_limit = soft_limit;
    self->crowded = Py_NewRef(crowded);
    return (PyObject *)self;
}

static int
line_queue_traverse(LineQueueObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->buffer);
    Py_VISIT(self->crowded);
    return 0;
}

static int
line_queue_clear(LineQueueObject *self)
{
    Py_CLEAR(self->buffer);
    Py_CLEAR(self->crowded);
    return 0;
}

static void
line_queue_dealloc(LineQueueObject *self)
{
    PyObject_GC_UnTrack(self);
    line_queue_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
line_queue_write(LineQueueObject *self, PyObject *line)
{
    if (self->buffer != NULL && PyList_GET_SIZE(self->buffer) < self->soft_limit) {
        if (PyList_Append(self->buffer, line) < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    if (self->crowded == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the line queue was cleared");
        return NULL;
    }
    return PyObject_CallOneArg(self->crowded, line);
}

static PyObject *
line_queue_point(LineQueueObject *self, PyObject *args)
{
    PyObject *buffer;
    Py_ssize_t soft_limit;
    if (!PyArg_ParseTuple(args, "O!n:point", &PyList_Type, &buffer, &soft_limit)) {
        return NULL;
    }
    Py_XSETREF(self->buffer, Py_NewRef(buffer));
    self->soft_limit = soft_limit;
    Py_RETURN_NONE;
}

static PyMethodDef line_queue_methods[] = {
    {"write", (PyCFunction)line_queue_write, METH_O,
     "write(line): append below the soft limit, else hand the line to crowded(line)."},
    {"point", (PyCFunction)line_queue_point, METH_VARARGS,
     "point(buffer, soft_limit): the sink swapped its queue or changed its limit."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LineQueueType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pytest_replay.capture._speedups.LineQueue",
    .tp_basicsize = sizeof(LineQueueObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "LineQueue(buffer, soft_limit, crowded): BufferedSink.write without Python.",
    .tp_new = line_queue_new,
    .tp_traverse = (traverseproc)line_queue_traverse,
    .tp_clear = (inquiry)line_queue_clear,
    .tp_dealloc = (destructor)line_queue_dealloc,
    .tp_methods = line_queue_methods,
};

/* ------------------------------------------------------------------------------------ */
/* Plan: what one configuration generation of a call site needs, copied from the site    */

#define ENTRY_PARTS 6
#define ROOT_PARTS 5
#define EXIT_PARTS 5
#define MAX_KEYS 3

typedef struct {
    PyObject_HEAD
    long long generation;
    PyObject *entry[ENTRY_PARTS]; /* around: timestamp, id, parent id, trace field, args */
    PyObject *root[ROOT_PARTS];   /* around: timestamp, id, reference fields, args */
    PyObject *exit[EXIT_PARTS];   /* around: timestamp, id, return value, duration */
    PyObject *keys[MAX_KEYS];     /* {"a":  ,"b":  ,"c": */
    int nkeys;                    /* 0: arguments always go through positional_json */
    PyObject *positional_json;
    PyObject *result_json;
    int result_plain;             /* result_json is value_json */
    Py_ssize_t max_str;
    PyObject *secret_text;        /* None when string values are not scanned */
} PlanObject;

static int
plan_traverse(PlanObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->positional_json);
    Py_VISIT(self->result_json);
    Py_VISIT(self->secret_text);
    return 0;
}

static int
plan_clear(PlanObject *self)
{
    for (int i = 0; i < ENTRY_PARTS; i++) {
        Py_CLEAR(self->entry[i]);
    }
    for (int i = 0; i < ROOT_PARTS; i++) {
        Py_CLEAR(self->root[i]);
    }
    for (int i = 0; i < EXIT_PARTS; i++) {
        Py_CLEAR(self->exit[i]);
    }
    for (int i = 0; i < MAX_KEYS; i++) {
        Py_CLEAR(self->keys[i]);
    }
    Py_CLEAR(self->positional_json);
    Py_CLEAR(self->result_json);
    Py_CLEAR(self->secret_text);
    return 0;
}

static void
plan_dealloc(PlanObject *self)
{
    PyObject_GC_UnTrack(self);
    plan_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject PlanType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pytest_replay.capture._speedups._Plan",
    .tp_basicsize = sizeof(PlanObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)plan_traverse,
    .tp_clear = (inquiry)plan_clear,
    .tp_dealloc = (destructor)plan_dealloc,
};

/* Copy a tuple of `count` bytes into parts; 0, or -1 if it is not that. */
static int
copy_parts(PyObject *tuple, PyObject **parts, Py_ssize_t count)
{
    if (tuple == NULL || !PyTuple_CheckExact(tuple) || PyTuple_GET_SIZE(tuple) != count) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *part = PyTuple_GET_ITEM(tuple, i);
        if (!PyBytes_CheckExact(part)) {
            return -1;
        }
        parts[i] = Py_NewRef(part);
    }
    return 0;
}

/* A plan from the site as it is now; NULL (no exception set) if the site does not look
 * like a CallSite, NULL with an exception set on a real error. */
static PlanObject *
plan_from_site(PyObject *site)
{
    PlanObject *plan = PyObject_GC_New(PlanObject, &PlanType);
    if (plan == NULL) {
        return NULL;
    }
    memset(&plan->generation, 0, sizeof(PlanObject) - offsetof(PlanObject, generation));
    PyObject *entry = NULL, *root = NULL, *exit_ = NULL, *keys = NULL, *generation = NULL,
             *max_str = NULL;
    int ok = 0;
    generation = PyObject_GetAttr(site, s_generation);
    entry = PyObject_GetAttr(site, s_entry_parts);
    root = PyObject_GetAttr(site, s_root_parts);
    exit_ = PyObject_GetAttr(site, s_exit_parts);
    keys = PyObject_GetAttr(site, s_arg_keys);
    plan->positional_json = PyObject_GetAttr(site, s_positional_json);
    plan->result_json = PyObject_GetAttr(site, s_result_json);
    max_str = PyObject_GetAttr(g_runtime, s_max_str);
    plan->secret_text = PyObject_GetAttr(g_runtime, s_secret_text);
    if (generation == NULL || entry == NULL || root == NULL || exit_ == NULL || keys == NULL
        || plan->positional_json == NULL || plan->result_json == NULL || max_str == NULL
        || plan->secret_text == NULL) {
        goto done;
    }
    plan->generation = PyLong_AsLongLong(generation);
    plan->max_str = PyLong_AsSsize_t(max_str);
    if (PyErr_Occurred()) {
        goto done;
    }
    if (copy_parts(entry, plan->entry, ENTRY_PARTS) < 0
        || copy_parts(root, plan->root, ROOT_PARTS) < 0
        || copy_parts(exit_, plan->exit, EXIT_PARTS) < 0 || !PyTuple_CheckExact(keys)) {
        goto done;
    }
    Py_ssize_t nkeys = PyTuple_GET_SIZE(keys);
    if (nkeys <= MAX_KEYS) {
        if (copy_parts(keys, plan->keys, nkeys) < 0) {
            goto done;
        }
        plan->nkeys = (int)nkeys;
    }
    plan->result_plain = plan->result_json == g_value_json;
    ok = 1;
done:
    Py_XDECREF(generation);
    Py_XDECREF(entry);
    Py_XDECREF(root);
    Py_XDECREF(exit_);
    Py_XDECREF(keys);
    Py_XDECREF(max_str);
    PyObject_GC_Track(plan);
    if (!ok) {
        Py_DECREF(plan);
        if (PyErr_Occurred()) {
            PyErr_Clear();
        }
        return NULL;
    }
    return plan;
}

/* ------------------------------------------------------------------------------------ */
/* Lines: constant parts with values pasted in between, in one allocation                */

#define MAX_PIECES 32

typedef struct {
    const char *data[MAX_PIECES];
    Py_ssize_t size[MAX_PIECES];
    int count;
    Py_ssize_t total;
    PyObject *owned[MAX_KEYS + 1]; /* bytes the pieces point into */
    int nowned;
    char numbers[5][40];           /* room for formatted numbers */
    int nnumbers;
} Pieces;

static inline void
pieces_add(Pieces *pieces, const char *data, Py_ssize_t size)
{
    pieces->data[pieces->count] = data;
    pieces->size[pieces->count] = size;
    pieces->count++;
    pieces->total += size;
}

static inline void
pieces_bytes(Pieces *pieces, PyObject *bytes)
{
    pieces_add(pieces, PyBytes_AS_STRING(bytes), PyBytes_GET_SIZE(bytes));
}

static inline void
pieces_signed(Pieces *pieces, long long value)
{
    char *end = pieces->numbers[pieces->nnumbers++] + 39;
    char *start = format_signed(value, end);
    pieces_add(pieces, start, end - start);
}

static void
pieces_release(Pieces *pieces)
{
    for (int i = 0; i < pieces->nowned; i++) {
        Py_DECREF(pieces->owned[i]);
    }
    pieces->nowned = 0;
}

static PyObject *
pieces_join(Pieces *pieces)
{
    PyObject *out = PyBytes_FromStringAndSize(NULL, pieces->total);
    if (out == NULL) {
        return NULL;
    }
    char *p = PyBytes_AS_STRING(out);
    for (int i = 0; i < pieces->count; i++) {
        memcpy(p, pieces->data[i], (size_t)pieces->size[i]);
        p += pieces->size[i];
    }
    return out;
}

/* ------------------------------------------------------------------------------------ */
/* Values: the scalars written here exactly as the Python path writes them               */

enum { DONE = 0, DEFER = 1, FAILED = -1 };

/* Whether a string may skip the encoder (callsite._plain_str): 1, 0, or -1 on error.
 * One past the cap never may: the encoder keeps and scans only its head. */
static int
plain_str(PlanObject *plan, PyObject *value)
{
    if (PyUnicode_GET_LENGTH(value) > plan->max_str) {
        return 0;
    }
    if (plan->secret_text == Py_None || PyUnicode_GET_LENGTH(value) < g_min_scanned) {
        return 1;
    }
    PyObject *verdict = PyObject_CallOneArg(plan->secret_text, value);
    if (verdict == NULL) {
        return -1;
    }
    int secret = PyObject_IsTrue(verdict);
    Py_DECREF(verdict);
    return secret < 0 ? -1 : !secret;
}

/* One scalar as JSON, added to pieces: DONE; DEFER when the Python encoder must decide
 * (any other type, an int orjson refuses, a lone surrogate, a secret-shaped string);
 * FAILED with an exception set. */
static int
scalar_json(PlanObject *plan, PyObject *value, Pieces *pieces)
{
    PyTypeObject *type = Py_TYPE(value);
    if (value == Py_None) {
        pieces_bytes(pieces, b_null);
        return DONE;
    }
    if (type == &PyBool_Type) {
        pieces_bytes(pieces, value == Py_True ? b_true : b_false);
        return DONE;
    }
    if (type == &PyLong_Type) {
        /* orjson writes signed and unsigned 64-bit integers and refuses the rest */
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow == 0) {
            if (v == -1 && PyErr_Occurred()) {
                return FAILED;
            }
            pieces_signed(pieces, v);
            return DONE;
        }
        if (overflow > 0) {
            unsigned long long u = PyLong_AsUnsignedLongLong(value);
            if (u == (unsigned long long)-1 && PyErr_Occurred()) {
                PyErr_Clear();
                return DEFER;
            }
            char *end = pieces->numbers[pieces->nnumbers++] + 39;
            char *start = format_unsigned(u, end);
            pieces_add(pieces, start, end - start);
            return DONE;
        }
        return DEFER;
    }
    if (type == &PyFloat_Type) {
        double d = PyFloat_AS_DOUBLE(value);
        if (d - d != 0.0) {
            return DEFER; /* nan and the infinities get tags */
        }
        if (g_fast_floats) {
            char *buffer = pieces->numbers[pieces->nnumbers];
            int size = format_float(d, buffer);
            if (size > 0) {
                pieces->nnumbers++;
                pieces_add(pieces, buffer, size);
                return DONE;
            }
        }
    }
    else if (type == &PyUnicode_Type) {
#if PY_VERSION_HEX < 0x030C0000
        if (PyUnicode_READY(value) < 0) {
            return FAILED;
        }
#endif
        int plain = plain_str(plan, value);
        if (plain <= 0) {
            return plain < 0 ? FAILED : DEFER;
        }
        if (ascii_verbatim(value)) {
            pieces_add(pieces, "\"", 1);
            pieces_add(pieces, (const char *)PyUnicode_DATA(value), PyUnicode_GET_LENGTH(value));
            pieces_add(pieces, "\"", 1);
            return DONE;
        }
    }
    else {
        return DEFER;
    }
    PyObject *out = PyObject_CallOneArg(g_dumps, value);
    if (out == NULL) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear(); /* a lone surrogate: the encoder tags it */
            return DEFER;
        }
        return FAILED;
    }
    if (!PyBytes_CheckExact(out)) {
        Py_DECREF(out);
        return DEFER;
    }
    pieces->owned[pieces->nowned++] = out;
    pieces_bytes(pieces, out);
    return DONE;
}

/* The "args" JSON of a positional call, added to pieces; 0, or -1 with an exception set. */
static int
args_json(PlanObject *plan, PyObject *const *args, Py_ssize_t nargs, Pieces *pieces)
{
    int start_count = pieces->count, start_owned = pieces->nowned,
        start_numbers = pieces->nnumbers;
    Py_ssize_t start_total = pieces->total;
    if (nargs == 0) { /* nothing passed, nothing bound: what bind() gives too */
        pieces_bytes(pieces, b_empty_args);
        return 0;
    }
    if (nargs == plan->nkeys) {
        int status = DONE;
        for (Py_ssize_t i = 0; i < nargs && status == DONE; i++) {
            pieces_bytes(pieces, plan->keys[i]);
            status = scalar_json(plan, args[i], pieces);
        }
        if (status == FAILED) {
            return -1;
        }
        if (status == DONE) {
            pieces_add(pieces, "}", 1);
            if (pieces->total - start_total <= plan->max_str) {
                return 0;
            }
        }
        /* not plain after all: the Python binder decides, from the start */
        for (int i = start_owned; i < pieces->nowned; i++) {
            Py_DECREF(pieces->owned[i]);
        }
        pieces->nowned = start_owned;
        pieces->count = start_count;
        pieces->total = start_total;
        pieces->nnumbers = start_numbers;
    }
    PyObject *tuple = PyTuple_New(nargs);
    if (tuple == NULL) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        PyTuple_SET_ITEM(tuple, i, Py_NewRef(args[i]));
    }
    PyObject *out = PyObject_CallOneArg(plan->positional_json, tuple);
    Py_DECREF(tuple);
    if (out == NULL) {
        return -1;
    }
    if (!PyBytes_Check(out)) {
        Py_DECREF(out);
        PyErr_SetString(PyExc_TypeError, "positional_json returned no bytes");
        return -1;
    }
    pieces->owned[pieces->nowned++] = out;
    pieces_bytes(pieces, out);
    return 0;
}

/* The return value's JSON (new reference to bytes), or NULL with an exception set. */
static PyObject *
result_json(PlanObject *plan, PyObject *result)
{
    if (plan->result_plain) {
        Pieces pieces;
        pieces.count = pieces.nowned = pieces.nnumbers = 0;
        pieces.total = 0;
        int status = scalar_json(plan, result, &pieces);
        if (status == FAILED) {
            pieces_release(&pieces);
            return NULL;
        }
        if (status == DONE && pieces.total <= plan->max_str) {
            if (pieces.nowned == 1) {
                return pieces.owned[0]; /* orjson's own bytes */
            }
            PyObject *out = pieces_join(&pieces);
            pieces_release(&pieces);
            return out;
        }
        pieces_release(&pieces);
    }
    PyObject *out = PyObject_CallOneArg(plan->result_json, result);
    if (out != NULL && !PyBytes_Check(out)) {
        Py_DECREF(out);
        PyErr_SetString(PyExc_TypeError, "result_json returned no bytes");
        return NULL;
    }
    return out;
}

/* ------------------------------------------------------------------------------------ */
/* The wrapper                                                                           */

typedef struct {
    PyObject_HEAD
    PyObject *function;
    PyObject *site;
    PyObject *fallback; /* the pure-Python wrapper: the reference, and every unusual call */
    PyObject *dict;
    PyObject *weakrefs;
    PlanObject *plan;
    vectorcallfunc vectorcall;
} TracedObject;

/* The plan for the current generation (new reference), refreshing the site first if the
 * configuration changed (as the Python wrapper does). NULL with an exception set when the
 * refresh raised; NULL without one when the site cannot be used from C. */
static PlanObject *
current_plan(TracedObject *self)
{
    PyObject *generation = read_slot(g_runtime, m_generation, s_generation);
    if (generation == NULL) {
        PyErr_Clear();
        return NULL;
    }
    long long wanted = PyLong_AsLongLong(generation);
    Py_DECREF(generation);
    if (wanted == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return NULL;
    }
    PlanObject *plan = self->plan;
    if (plan != NULL && plan->generation == wanted) {
        Py_INCREF(plan);
        return plan;
    }
    PyObject *seen = PyObject_GetAttr(self->site, s_generation);
    if (seen == NULL) {
        PyErr_Clear();
        return NULL;
    }
    long long site_generation = PyLong_AsLongLong(seen);
    Py_DECREF(seen);
    if (site_generation == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return NULL;
    }
    if (site_generation != wanted) {
        PyObject *done = PyObject_CallMethodNoArgs(self->site, s_refresh);
        if (done == NULL) {
            return NULL; /* the Python wrapper counts this failure: so does the caller */
        }
        Py_DECREF(done);
    }
    plan = plan_from_site(self->site);
    if (plan == NULL) {
        return NULL;
    }
    PlanObject *old = self->plan;
    self->plan = (PlanObject *)Py_NewRef(plan);
    Py_XDECREF(old);
    return plan;
}

static PyObject *
use_fallback(TracedObject *self, PyObject *const *args, size_t nargsf)
{
    if (PyErr_Occurred()) {
        PyErr_Clear();
    }
    return PyObject_Vectorcall(self->fallback, args, nargsf, NULL);
}

/* The exception being raised now gets `context` as its __context__ (steals it), as Python
 * chains an exception raised inside an except block: what the Python wrapper shows when
 * a callback of its except block raises. */
static void
chain_to(PyObject *context)
{
    PyObject *raised = take_exception();
    if (raised == NULL) {
        Py_DECREF(context);
        return;
    }
    if (raised != context && PyExceptionInstance_Check(raised)
        && PyExceptionInstance_Check(context)) {
        PyException_SetContext(raised, context);
    }
    else {
        Py_DECREF(context);
    }
    give_exception(raised);
}

/* Call one of the Python callbacks with the raised exception as last argument; the
 * exception is cleared afterwards. Returns -1, the callback's own exception set, if the
 * callback raised (the Python wrapper would have propagated it too). */
static int
report_exception(PyObject *callback)
{
    PyObject *exc = take_exception();
    if (exc == NULL) {
        return 0;
    }
    PyObject *res = PyObject_CallOneArg(callback, exc);
    if (res == NULL) {
        chain_to(exc);
        return -1;
    }
    Py_DECREF(exc);
    Py_DECREF(res);
    return 0;
}

/* Hand a line to the sink as Runtime.send does; 0, or -1 if the failure must propagate
 * (the sink or sink_failed raised something that is not an Exception). */
static int
write_line(PyObject *line)
{
    PyObject *write = read_slot(g_runtime, m_write, s_write);
    PyObject *res;
    if (write != NULL && PyCFunction_Check(write)
        && PyCFunction_GET_FUNCTION(write) == (PyCFunction)line_queue_write
        && Py_IS_TYPE(PyCFunction_GET_SELF(write), &LineQueueType)) {
        /* a background sink's queue (the usual sink): its append, without a call */
        res = line_queue_write((LineQueueObject *)PyCFunction_GET_SELF(write), line);
    }
    else {
        res = write == NULL ? NULL : PyObject_CallOneArg(write, line);
    }
    Py_XDECREF(write);
    if (res != NULL) {
        Py_DECREF(res);
        return 0;
    }
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return -1;
    }
    PyObject *exc = take_exception();
    res = PyObject_CallMethodOneArg(g_runtime, s_sink_failed, exc);
    if (res == NULL) {
        chain_to(exc);
        return -1;
    }
    Py_DECREF(exc);
    Py_DECREF(res);
    return 0;
}

/* Put the caller's frame back: reset by the token (no second token to allocate); if that is
 * refused (never in a sync call, which starts and ends in one context), set it. */
static void
restore_frame(PyObject *token, PyObject *parent)
{
    if (PyContextVar_Reset(g_frame_var, token) == 0) {
        return;
    }
    PyErr_Clear();
    PyObject *again = PyContextVar_Set(g_frame_var, parent);
    if (again == NULL) {
        PyErr_Clear();
    }
    Py_XDECREF(again);
}

/* Call the function with `state` as the current frame, restoring `parent` after;
 * *called is 0 if the frame could not even be set (the function did not run). */
static PyObject *
call_in_frame(TracedObject *self, PyObject *state, PyObject *parent, PyObject *const *args,
              size_t nargsf, int *called)
{
    *called = 0;
    PyObject *token = PyContextVar_Set(g_frame_var, state);
    if (token == NULL) {
        return NULL;
    }
    *called = 1;
    PyObject *result = PyObject_Vectorcall(self->function, args, nargsf, NULL);
    if (result == NULL) {
        PyObject *exc = take_exception();
        restore_frame(token, parent);
        if (exc != NULL) {
            give_exception(exc);
        }
    }
    else {
        restore_frame(token, parent);
    }
    Py_DECREF(token);
    return result;
}

/* The three steps around the call (entry line, exit line, error) are functions of their
 * own, never inlined: their line buffers are off the C stack while the function runs, so
 * recursion through traced functions costs about the C stack it costs in Python. */
#if defined(__GNUC__) || defined(__clang__)
#define NOINLINE __attribute__((noinline))
#elif defined(_MSC_VER)
#define NOINLINE __declspec(noinline)
#else
#define NOINLINE
#endif

/* Write the entry line of a call (plan NULL: its refresh raised, the exception is set).
 * 0: *state_out is the frame the call runs in and *cid_out its id (new references; the id
 * NULL when the call runs uncaptured: sampled out, or capture failed and was counted).
 * -1: an exception that must propagate (KeyboardInterrupt and the like), nothing set. */
static NOINLINE int
enter(PlanObject *plan, PyObject *parent, PyObject *const *args, Py_ssize_t nargs,
      long long started, PyObject **state_out, PyObject **cid_out)
{
    PyObject *state = NULL, *cid = NULL, *line = NULL, *field = NULL, *opened = NULL;
    int status = 0;
    Pieces pieces;
    pieces.count = pieces.nowned = pieces.nnumbers = 0;
    pieces.total = 0;

    if (plan == NULL) {
        goto failed;
    }
    if (parent == Py_None) {
        opened = PyObject_CallMethodNoArgs(g_runtime, s_open_root);
        if (opened == NULL) {
            goto failed;
        }
        if (!PyTuple_CheckExact(opened) || PyTuple_GET_SIZE(opened) != 2
            || !PyTuple_CheckExact(PyTuple_GET_ITEM(opened, 0))
            || PyTuple_GET_SIZE(PyTuple_GET_ITEM(opened, 0)) != 2
            || !PyBytes_Check(PyTuple_GET_ITEM(opened, 1))) {
            PyErr_SetString(PyExc_TypeError, "open_root() returned no (frame, bytes) pair");
            goto failed;
        }
        state = Py_NewRef(PyTuple_GET_ITEM(opened, 0));
        PyObject *root_id = PyTuple_GET_ITEM(state, 0);
        if (root_id == Py_None) { /* sampling left this request out */
            goto done;
        }
        if (!PyBytes_Check(root_id)) {
            PyErr_SetString(PyExc_TypeError, "a frame id is not bytes");
            goto failed;
        }
        cid = Py_NewRef(root_id);
        pieces_bytes(&pieces, plan->root[0]);
        pieces_signed(&pieces, started);
        pieces_bytes(&pieces, plan->root[1]);
        pieces_bytes(&pieces, cid);
        pieces_bytes(&pieces, plan->root[2]);
        pieces_bytes(&pieces, PyTuple_GET_ITEM(opened, 1));
        pieces_bytes(&pieces, plan->root[3]);
        if (args_json(plan, args, nargs, &pieces) < 0) {
            goto failed;
        }
        pieces_bytes(&pieces, plan->root[4]);
    }
    else {
        PyObject *trace = PyTuple_GET_ITEM(parent, 1);
        PyObject *ids = read_slot(g_ids, m_ids, s_ids);
        if (ids == NULL) {
            goto failed;
        }
        if (Py_IS_TYPE(ids, &IdsType)) {
            cid = ids_next((IdsObject *)ids);
        }
        else {
            cid = PyIter_Next(ids);
            if (cid == NULL && !PyErr_Occurred()) {
                PyErr_SetNone(PyExc_StopIteration);
            }
        }
        Py_DECREF(ids);
        if (cid == NULL) {
            goto failed;
        }
        state = PyTuple_Pack(2, cid, trace);
        if (state == NULL) {
            goto failed;
        }
        PyObject *parent_id = PyTuple_GET_ITEM(parent, 0);
        field = Py_IS_TYPE(trace, (PyTypeObject *)g_trace_type)
                    ? read_slot(trace, m_field, s_field) : PyObject_GetAttr(trace, s_field);
        if (field == NULL) {
            goto failed;
        }
        if (!PyBytes_Check(cid) || !PyBytes_Check(parent_id) || !PyBytes_Check(field)) {
            PyErr_SetString(PyExc_TypeError, "frame ids and trace fields are bytes");
            goto failed;
        }
        pieces_bytes(&pieces, plan->entry[0]);
        pieces_signed(&pieces, started);
        pieces_bytes(&pieces, plan->entry[1]);
        pieces_bytes(&pieces, cid);
        pieces_bytes(&pieces, plan->entry[2]);
        pieces_bytes(&pieces, parent_id);
        pieces_bytes(&pieces, plan->entry[3]);
        pieces_bytes(&pieces, field);
        pieces_bytes(&pieces, plan->entry[4]);
        if (args_json(plan, args, nargs, &pieces) < 0) {
            goto failed;
        }
        pieces_bytes(&pieces, plan->entry[5]);
    }
    line = pieces_join(&pieces);
    pieces_release(&pieces);
    if (line == NULL) {
        goto failed;
    }
    if (write_line(line) < 0) {
        goto propagate;
    }
    goto done;

failed: /* a failure of capture costs the call's events, never the call */
    pieces_release(&pieces);
    if (!PyErr_ExceptionMatches(PyExc_Exception) || report_exception(g_capture_failed) < 0) {
        goto propagate; /* KeyboardInterrupt and the like propagate, as in the Python wrapper */
    }
    Py_CLEAR(cid);
    Py_XSETREF(state, Py_NewRef(g_unsampled)); /* uncaptured, and so are its callees */
    goto done;

propagate:
    status = -1;
    Py_CLEAR(cid);
    Py_CLEAR(state);
done:
    Py_XDECREF(line);
    Py_XDECREF(field);
    Py_XDECREF(opened);
    *state_out = state;
    *cid_out = cid;
    return status;
}

/* Write the exit line of a call that returned `result` (stolen); returns it, or NULL if an
 * exception must propagate instead (a sink raising KeyboardInterrupt, as in Python). */
static NOINLINE PyObject *
leave(PlanObject *plan, PyObject *cid, long long started, PyObject *result)
{
    long long now = now_ns();
    PyObject *value = result_json(plan, result);
    if (value == NULL) {
        goto failed;
    }
    Pieces pieces;
    pieces.count = pieces.nowned = pieces.nnumbers = 0;
    pieces.total = 0;
    pieces_bytes(&pieces, plan->exit[0]);
    pieces_signed(&pieces, now);
    pieces_bytes(&pieces, plan->exit[1]);
    pieces_bytes(&pieces, cid);
    pieces_bytes(&pieces, plan->exit[2]);
    pieces_bytes(&pieces, value);
    pieces_bytes(&pieces, plan->exit[3]);
    pieces_signed(&pieces, now - started);
    pieces_bytes(&pieces, plan->exit[4]);
    PyObject *line = pieces_join(&pieces);
    Py_DECREF(value);
    if (line == NULL) {
        goto failed;
    }
    int written = write_line(line);
    Py_DECREF(line);
    if (written < 0) {
        Py_CLEAR(result);
    }
    return result;

failed:
    if (!PyErr_ExceptionMatches(PyExc_Exception) || report_exception(g_capture_failed) < 0) {
        Py_CLEAR(result);
    }
    return result;
}

/* The function raised (the exception is set): record it through the Python
 * _record_failure, then raise it again unchanged. A KeyboardInterrupt or SystemExit out of
 * the recording (a sink's) propagates instead, chained to it, as from the Python wrapper's
 * except block; any other failure there is the recorder's to count. */
static NOINLINE void
fail(TracedObject *self, PyObject *cid, long long started)
{
    mark_traceback();
    PyObject *exc = take_exception();
    if (exc == NULL) {
        return;
    }
    PyObject *when = PyLong_FromLongLong(started);
    PyObject *res = when == NULL ? NULL : PyObject_CallFunctionObjArgs(
        g_record_failure, self->site, cid, when, exc, NULL);
    Py_XDECREF(when);
    if (res != NULL) {
        Py_DECREF(res);
    }
    else if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        chain_to(exc);
        return;
    }
    else {
        PyErr_Clear(); /* the application's exception wins */
    }
    give_exception(exc);
}

/* Whether capture was reconfigured since ``epoch`` (the runtime's epoch object read when
 * the call began, held since, so its address cannot be reused): the call's exit and error
 * belong to a sink that is gone. Counted by Runtime.stale_exit; an exception pending (the
 * call raised) is kept. */
static int
epoch_moved(PyObject *epoch)
{
    if (epoch == NULL) {
        return 0;
    }
    PyObject *now = read_slot(g_runtime, m_epoch, s_epoch);
    if (now == NULL) {
        PyErr_Clear();
        return 0;
    }
    Py_DECREF(now);
    if (now == epoch) {
        return 0;
    }
    PyObject *pending = take_exception();
    PyObject *res = PyObject_CallMethodNoArgs(g_runtime, s_stale_exit);
    if (res == NULL) {
        PyErr_Clear(); /* counting it must not cost the call */
    }
    Py_XDECREF(res);
    if (pending != NULL) {
        give_exception(pending);
    }
    return 1;
}

static PyObject *
traced_vectorcall(TracedObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (self->fallback == NULL) { /* cleared by the garbage collector: cannot run */
        PyErr_SetString(PyExc_ReferenceError, "a traced function called after its cleanup");
        return NULL;
    }
    if ((kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0) || g_runtime == NULL) {
        return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
    }
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    int active = runtime_flag(m_active, s_active);
    if (active <= 0) {
        if (active < 0) {
            return use_fallback(self, args, nargsf);
        }
        return PyObject_Vectorcall(self->function, args, nargsf, NULL);
    }
    PyObject *parent = NULL;
    if (PyContextVar_Get(g_frame_var, NULL, &parent) < 0) {
        return use_fallback(self, args, nargsf);
    }
    if (parent == NULL) {
        parent = Py_NewRef(Py_None);
    }
    if (parent != Py_None) {
        if (!PyTuple_CheckExact(parent) || PyTuple_GET_SIZE(parent) != 2) {
            Py_DECREF(parent);
            return use_fallback(self, args, nargsf);
        }
        if (PyTuple_GET_ITEM(parent, 0) == Py_None) { /* inside a request sampling left out */
            Py_DECREF(parent);
            return PyObject_Vectorcall(self->function, args, nargsf, NULL);
        }
    }
    long long started = now_ns();
    PlanObject *plan = current_plan(self);
    if (plan == NULL && !PyErr_Occurred()) {
        Py_DECREF(parent);
        return use_fallback(self, args, nargsf); /* nothing done yet */
    }
    PyObject *state, *cid;
    PyObject *epoch = read_slot(g_runtime, m_epoch, s_epoch);
    if (epoch == NULL) {
        PyErr_Clear(); /* no epoch to compare: the exit is written as before */
    }
    if (enter(plan, parent, args, nargs, started, &state, &cid) < 0) {
        Py_XDECREF(epoch);
        Py_XDECREF(plan);
        Py_DECREF(parent);
        return NULL;
    }
    int called;
    PyObject *result = call_in_frame(self, state, parent, args, nargsf, &called);
    Py_DECREF(state);
    if (cid != NULL && !epoch_moved(epoch)) { /* captured (so the plan is there) */
        if (result != NULL) {
            result = leave(plan, cid, started, result);
        }
        else if (called) {
            fail(self, cid, started);
        }
    }
    Py_XDECREF(cid);
    Py_XDECREF(epoch);
    Py_XDECREF(plan);
    Py_DECREF(parent);
    return result;
}

static PyObject *
traced_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *function, *site, *fallback;
    static char *names[] = {"function", "site", "fallback", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO:TracedFunction", names, &function,
                                     &site, &fallback)) {
        return NULL;
    }
    if (!PyCallable_Check(function) || !PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "function and fallback must be callable");
        return NULL;
    }
    TracedObject *self = (TracedObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->function = Py_NewRef(function);
    self->site = Py_NewRef(site);
    self->fallback = Py_NewRef(fallback);
    self->vectorcall = (vectorcallfunc)traced_vectorcall;
    return (PyObject *)self;
}

static int
traced_traverse(TracedObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->function);
    Py_VISIT(self->site);
    Py_VISIT(self->fallback);
    Py_VISIT(self->dict);
    Py_VISIT((PyObject *)self->plan);
    return 0;
}

static int
traced_clear(TracedObject *self)
{
    Py_CLEAR(self->function);
    Py_CLEAR(self->site);
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->dict);
    Py_CLEAR(self->plan);
    return 0;
}

static void
traced_dealloc(TracedObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakrefs != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    traced_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Bound like a function: an instance method gets its instance. */
static PyObject *
traced_descr_get(PyObject *self, PyObject *obj, PyObject *type)
{
    (void)type;
    if (obj == NULL || obj == Py_None) {
        return Py_NewRef(self);
    }
    return PyMethod_New(self, obj);
}

static PyObject *
traced_repr(TracedObject *self)
{
    PyObject *name = self->dict == NULL ? NULL : PyDict_GetItemWithError(self->dict, s_qualname);
    if (name == NULL && PyErr_Occurred()) {
        return NULL;
    }
    if (name == NULL || !PyUnicode_Check(name)) {
        return PyUnicode_FromFormat("<function %R (traced) at %p>", self->function, self);
    }
    return PyUnicode_FromFormat("<function %U at %p>", name, self);
}

/* Pickled by reference, like the function it stands for (its module attribute). */
static PyObject *
traced_reduce(TracedObject *self, PyObject *unused)
{
    (void)unused;
    return PyObject_GetAttr((PyObject *)self, s_qualname);
}

static PyMethodDef traced_methods[] = {
    {"__reduce__", (PyCFunction)traced_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef traced_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject TracedType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pytest_replay.capture._speedups.TracedFunction",
    .tp_basicsize = sizeof(TracedObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "TracedFunction(function, site, fallback): @traced's wrapper, in C.",
    .tp_new = traced_new,
    .tp_traverse = (traverseproc)traced_traverse,
    .tp_clear = (inquiry)traced_clear,
    .tp_dealloc = (destructor)traced_dealloc,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(TracedObject, vectorcall),
    .tp_descr_get = traced_descr_get,
    .tp_repr = (reprfunc)traced_repr,
    .tp_dictoffset = offsetof(TracedObject, dict),
    .tp_weaklistoffset = offsetof(TracedObject, weakrefs),
    .tp_methods = traced_methods,
    .tp_getset = traced_getset,
};

/* ------------------------------------------------------------------------------------ */
/* Agreement with orjson, asked of orjson itself at install                              */

/* 1 if orjson writes d as format_float does (or format_float declines), 0 if not, -1 on
 * error. */
static int
float_agrees(double d)
{
    char mine[40];
    int size = format_float(d, mine);
    if (size == 0) {
        return 1;
    }
    PyObject *number = PyFloat_FromDouble(d);
    PyObject *theirs = number == NULL ? NULL : PyObject_CallOneArg(g_dumps, number);
    Py_XDECREF(number);
    if (theirs == NULL) {
        return -1;
    }
    int same = PyBytes_Check(theirs) && PyBytes_GET_SIZE(theirs) == size
               && memcmp(PyBytes_AS_STRING(theirs), mine, (size_t)size) == 0;
    Py_DECREF(theirs);
    return same;
}

/* Floats written here only if orjson writes a few thousand typical and awkward ones the
 * same way (a later orjson may lay numbers out differently: then orjson writes them). */
static int
check_floats(void)
{
    unsigned long long state = 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < 3000; i++) {
        double d;
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        unsigned long long r = state >> 11;
        switch (i % 6) {
        case 0: d = (double)(i / 6); break;                               /* integers */
        case 1: d = (double)(r % 100000) / 100.0; break;                  /* prices */
        case 2: d = (double)(r % 1000000000) / POW10[(r >> 40) % 16]; break;
        case 3: d = POW10[i % 16] * ((i / 96) % 2 ? 1e-5 : 1.0); break;   /* powers, bounds */
        case 4: d = ldexp((double)(r & ((1ULL << 52) - 1)) + 4503599627370496.0, /* any bits */
                          (int)((r >> 52) % 90) - 70);
                break;
        default: d = 1.0 / (double)(1 + r % 1000); break;                 /* long fractions */
        }
        if (i % 12 == 11) {
            d = -d;
        }
        int agrees = float_agrees(d);
        if (agrees <= 0) {
            return agrees;
        }
    }
    return float_agrees(-0.0) && float_agrees(9.999999999999998e14)
           && float_agrees(1e-5) && float_agrees(0.1 + 0.2);
}

/* Which ASCII characters orjson escapes: those are left to orjson. */
static int
learn_escapes(void)
{
    for (int c = 0; c < 128; c++) {
        char text[1] = {(char)c};
        PyObject *string = PyUnicode_FromStringAndSize(text, 1);
        PyObject *out = string == NULL ? NULL : PyObject_CallOneArg(g_dumps, string);
        Py_XDECREF(string);
        if (out == NULL) {
            return -1;
        }
        g_escaped[c] = !(PyBytes_Check(out) && PyBytes_GET_SIZE(out) == 3
                         && PyBytes_AS_STRING(out)[0] == '"'
                         && PyBytes_AS_STRING(out)[1] == (char)c
                         && PyBytes_AS_STRING(out)[2] == '"');
        Py_DECREF(out);
    }
    return 1;
}

/* ------------------------------------------------------------------------------------ */
/* Module                                                                                */

static PyObject *
install(PyObject *module, PyObject *args, PyObject *kwargs)
{
    (void)module;
    PyObject *runtime, *ids, *frame_var, *trace_type, *dumps, *value_json, *capture_failed,
        *record_failure, *unsampled, *marker;
    Py_ssize_t min_scanned;
    static char *names[] = {"runtime", "ids", "frame_var", "trace_type", "dumps", "value_json",
                            "capture_failed", "record_failure", "unsampled", "marker",
                            "min_scanned", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$OOOOOOOOOOn:install", names, &runtime,
                                     &ids, &frame_var, &trace_type, &dumps, &value_json,
                                     &capture_failed, &record_failure, &unsampled, &marker,
                                     &min_scanned)) {
        return NULL;
    }
    int64_t here = PyInterpreterState_GetID(PyInterpreterState_Get());
    if (here < 0) {
        return NULL;
    }
    if (g_interpreter != -1 && g_interpreter != here) {
        PyErr_SetString(PyExc_ImportError,
                        "the C accelerator serves the first interpreter that installed it in this "
                        "process; this is another (sub)interpreter");
        return NULL;
    }
    if (!PyContextVar_CheckExact(frame_var)) {
        PyErr_SetString(PyExc_TypeError, "frame_var must be a ContextVar");
        return NULL;
    }
    if (!PyFunction_Check(marker)) {
        PyErr_SetString(PyExc_TypeError, "marker must be a Python function");
        return NULL;
    }
    Py_XSETREF(g_runtime, Py_NewRef(runtime));
    Py_XSETREF(g_ids, Py_NewRef(ids));
    Py_XSETREF(g_frame_var, Py_NewRef(frame_var));
    Py_XSETREF(g_dumps, Py_NewRef(dumps));
    Py_XSETREF(g_value_json, Py_NewRef(value_json));
    Py_XSETREF(g_capture_failed, Py_NewRef(capture_failed));
    Py_XSETREF(g_record_failure, Py_NewRef(record_failure));
    Py_XSETREF(g_unsampled, Py_NewRef(unsampled));
    Py_XSETREF(g_marker_code, Py_NewRef(PyFunction_GET_CODE(marker)));
    Py_XSETREF(g_marker_globals, Py_NewRef(PyFunction_GET_GLOBALS(marker)));
    g_min_scanned = min_scanned;
    m_active = find_slot((PyObject *)Py_TYPE(runtime), s_active);
    m_generation = find_slot((PyObject *)Py_TYPE(runtime), s_generation);
    m_write = find_slot((PyObject *)Py_TYPE(runtime), s_write);
    m_epoch = find_slot((PyObject *)Py_TYPE(runtime), s_epoch);
    m_ids = find_slot((PyObject *)Py_TYPE(ids), s_ids);
    m_field = PyType_Check(trace_type) ? find_slot(trace_type, s_field) : NULL;
    Py_XSETREF(g_trace_type, Py_NewRef(trace_type));
    g_fast_floats = g_fast_strings = 0;
    int floats = check_floats();
    int strings = floats < 0 ? -1 : learn_escapes();
    if (floats < 0 || strings < 0) {
        return NULL;
    }
    g_fast_floats = floats;
    g_fast_strings = strings;
    g_interpreter = here;
    Py_RETURN_NONE;
}

static PyObject *
float_json(PyObject *module, PyObject *value)
{
    (void)module;
    double d = PyFloat_AsDouble(value);
    if (d == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    char out[40];
    int size = isfinite(d) ? format_float(d, out) : 0;
    if (size == 0) {
        Py_RETURN_NONE;
    }
    return PyBytes_FromStringAndSize(out, size);
}

static PyObject *
shortcuts(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return Py_BuildValue("{sOsO}", "floats", g_fast_floats ? Py_True : Py_False,
                         "strings", g_fast_strings ? Py_True : Py_False);
}

static PyMethodDef module_methods[] = {
    {"install", (PyCFunction)(void (*)(void))install, METH_VARARGS | METH_KEYWORDS,
     "install(*, runtime, ids, frame_var, trace_type, dumps, value_json, capture_failed,"
     " record_failure,"
     " unsampled, marker, min_scanned): the Python pieces the wrapper uses."},
    {"float_json", float_json, METH_O,
     "float_json(value): the float as this module writes it, or None where orjson does."},
    {"shortcuts", shortcuts, METH_NOARGS,
     "shortcuts(): which values install() found this module writes as orjson does."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pytest_replay.capture._speedups",
    .m_doc = "The C accelerator of @traced (see traced.py for the reference behaviour).",
    .m_size = -1,
    .m_methods = module_methods,
};

static int
intern(PyObject **slot, const char *text)
{
    *slot = PyUnicode_InternFromString(text);
    return *slot == NULL ? -1 : 0;
}

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (intern(&s_active, "active") < 0 || intern(&s_generation, "generation") < 0
        || intern(&s_write, "write") < 0 || intern(&s_ids, "ids") < 0
        || intern(&s_open_root, "open_root") < 0 || intern(&s_sink_failed, "sink_failed") < 0
        || intern(&s_epoch, "epoch") < 0 || intern(&s_stale_exit, "stale_exit") < 0
        || intern(&s_refresh, "refresh") < 0 || intern(&s_field, "field") < 0
        || intern(&s_entry_parts, "entry_parts") < 0 || intern(&s_root_parts, "root_parts") < 0
        || intern(&s_exit_parts, "exit_parts") < 0 || intern(&s_arg_keys, "arg_keys") < 0
        || intern(&s_positional_json, "positional_json") < 0
        || intern(&s_result_json, "result_json") < 0 || intern(&s_max_str, "max_str") < 0
        || intern(&s_secret_text, "secret_text") < 0 || intern(&s_qualname, "__qualname__") < 0) {
        return NULL;
    }
    b_null = PyBytes_FromString("null");
    b_true = PyBytes_FromString("true");
    b_false = PyBytes_FromString("false");
    b_empty_args = PyBytes_FromString("{}");
    if (b_null == NULL || b_true == NULL || b_false == NULL || b_empty_args == NULL) {
        return NULL;
    }
    if (PyType_Ready(&IdsType) < 0 || PyType_Ready(&PlanType) < 0
        || PyType_Ready(&TracedType) < 0 || PyType_Ready(&LineQueueType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "Ids", (PyObject *)&IdsType) < 0
        || PyModule_AddObjectRef(module, "TracedFunction", (PyObject *)&TracedType) < 0
        || PyModule_AddObjectRef(module, "LineQueue", (PyObject *)&LineQueueType) < 0
        || PyModule_AddIntConstant(module, "INTERFACE", INTERFACE) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
