/* Capture's value walks in C: the look before encoding, and the scan for secret text.
 *
 * Three pieces, each the exact twin of a Python reference that stays the
 * behaviour's definition (tests hold the two to the same answers):
 *
 *   - AnchorGate: whether a string holds any literal anchor of a redaction
 *     rule (Redaction.holds_secret_text asks the same before running any
 *     regular expression). Text of any width is searched here (the folded
 *     anchors in its casefold, as Python does); any text an anchor is found
 *     in goes to the Python fallback, so the regular expressions still decide. Most captured strings hold no anchor
 *     and never leave C.
 *   - shape(): plain.shape, the look that lets orjson take a value as it is.
 *   - scrub_encoded(): Redaction.scrub_encoded, the scan of an encoded event.
 *
 * Nothing is kept across calls but the gate's anchor tables.
 *
 * Where the Python references raise because a callback or another thread changed the
 * value mid-walk ("dictionary changed size during iteration"), these walks carry on and
 * answer for what they saw: every element is owned while code can run, so that is safe,
 * and the runtime treats either outcome as a value to encode carefully. Nesting is
 * counted once per level (Py_EnterRecursiveCall) where Python spends two frames, so a
 * value of several hundred levels that makes Python's scrub raise RecursionError is
 * scrubbed here; capture's depth cap keeps real values far below either.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Bumped whenever what textscan.py and this module expect of each other changes. */
#define INTERFACE 1

#define PLAIN 0
#define BOUNDED 1
#define HUGE 2
#define BUDGET 20000      /* plain.BUDGET */
#define SAFE_KEYS 8192    /* plain.SAFE_KEYS */

static PyObject *s_tag; /* "$type" (values.TAG) */

/* ------------------------------------------------------------------------------------ */
/* AnchorGate                                                                            */

typedef struct {
    const unsigned char *text;
    Py_ssize_t size;
} Anchor;

typedef struct {
    PyObject_HEAD
    PyObject *fallback;       /* callable or NULL */
    PyObject *keep;           /* the anchors' bytes, owned */
    Anchor *anchors;          /* case anchors first, then folded ones */
    Py_ssize_t case_count;
    Py_ssize_t folded_count;
    int always;               /* an empty anchor: every text holds it */
    int wide_to_fallback;     /* a non-ASCII anchor was left out: other text goes to Python */
    unsigned char single[256];       /* a one-byte anchor may be this byte (either kind) */
    unsigned char pairs[2][8192];    /* bit (a << 8 | b): an anchor starts with a, b */
    unsigned char any_pair[8192];    /* the same for the raw bytes, both kinds, any case */
    Py_ssize_t from[2][257];         /* anchors starting with byte c: from[c] to from[c+1] */
} GateObject;

static PyTypeObject GateType;

static inline unsigned char
lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static inline int
pair_set(const unsigned char *pairs, unsigned char a, unsigned char b)
{
    unsigned int bit = (unsigned int)a << 8 | b;
    return pairs[bit >> 3] >> (bit & 7) & 1;
}

/* Whether an anchor of ``kind`` starting with ASCII ``c`` is at ``at`` of a str of any
 * width (``width`` is its PyUnicode kind). A character past ASCII matches no anchor byte. */
static inline int
wide_anchor_at(GateObject *gate, int kind, unsigned char c, int width, const void *data,
               Py_ssize_t at, Py_ssize_t left)
{
    const Anchor *anchors = gate->anchors + (kind ? gate->case_count : 0);
    for (Py_ssize_t k = gate->from[kind][c]; k < gate->from[kind][c + 1]; k++) {
        const Anchor *anchor = &anchors[k];
        if (anchor->size > left) {
            continue;
        }
        Py_ssize_t j = 1;
        while (j < anchor->size) {
            Py_UCS4 ch = PyUnicode_READ(width, data, at + j);
            if (ch >= 128 || (kind ? lower((unsigned char)ch) : (unsigned char)ch)
                                 != anchor->text[j]) {
                break;
            }
            j++;
        }
        if (j >= anchor->size) {
            return 1;
        }
    }
    return 0;
}

/* Whether an anchor of ``kind`` (0 as it is, 1 folded) starting with ``c`` is at ``at`` of
 * ASCII ``data``: the one-byte case of wide_anchor_at, which the compiler specialises. */
static int
anchor_at(GateObject *gate, int kind, unsigned char c, const unsigned char *data,
          Py_ssize_t at, Py_ssize_t left)
{
    return wide_anchor_at(gate, kind, c, PyUnicode_1BYTE_KIND, data, at, left);
}

/* Whether ASCII ``data`` of ``size`` bytes holds an anchor. Each position costs two bit
 * tests (the byte pair as it is, and lower-cased) until a pair some anchor starts with. */
static int
gate_finds(GateObject *gate, const unsigned char *data, Py_ssize_t size)
{
    if (gate->always) {
        return 1;
    }
    for (Py_ssize_t at = 0; at < size; at++) {
        unsigned char c = data[at];
        if (gate->single[c]) {
            return 1;  /* maybe a one-byte anchor (rare): the fallback decides */
        }
        if (at + 1 == size) {
            break;
        }
        unsigned char next = data[at + 1];
        if (!pair_set(gate->any_pair, c, next)) {
            continue;  /* the usual case: no anchor of either kind starts here */
        }
        if (pair_set(gate->pairs[0], c, next)
            && anchor_at(gate, 0, c, data, at, size - at)) {
            return 1;
        }
        unsigned char l = lower(c);
        if (pair_set(gate->pairs[1], l, lower(next))
            && anchor_at(gate, 1, l, data, at, size - at)) {
            return 1;
        }
    }
    return 0;
}

/* gate_finds for a str that is not ASCII, looking for anchors of ``kind`` only: the case
 * anchors in the text as it is, the folded ones in its case-folded form (folding can turn
 * other characters into ASCII letters: the Kelvin sign into k). */
static int
wide_finds(GateObject *gate, int kind, PyObject *text)
{
    int width = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t size = PyUnicode_GET_LENGTH(text);
    for (Py_ssize_t at = 0; at + 1 < size; at++) {
        Py_UCS4 c = PyUnicode_READ(width, data, at);
        if (c >= 128) {
            continue;
        }
        if (gate->single[c]) {
            return 1;  /* maybe a one-byte anchor (rare): the fallback decides */
        }
        Py_UCS4 next = PyUnicode_READ(width, data, at + 1);
        if (next >= 128) {
            at++;  /* no anchor starts here, nor at the next character */
            continue;
        }
        unsigned char a = (unsigned char)c, b = (unsigned char)next;
        if (kind) {
            a = lower(a);
            b = lower(b);
        }
        if (pair_set(gate->pairs[kind], a, b)
            && wide_anchor_at(gate, kind, a, width, data, at, size - at)) {
            return 1;
        }
    }
    if (size > 0) {
        Py_UCS4 last = PyUnicode_READ(width, data, size - 1);
        if (last < 128 && gate->single[last]) {
            return 1;
        }
    }
    return 0;
}

/* A non-ASCII str: the case anchors in it, the folded ones in ``text.casefold()``. */
static int
wide_may_hold(GateObject *gate, PyObject *text)
{
    if (gate->always || gate->wide_to_fallback) {
        return 1;
    }
    if (gate->case_count > 0 && wide_finds(gate, 0, text)) {
        return 1;
    }
    if (gate->folded_count == 0) {
        return 0;
    }
    PyObject *folded = PyObject_CallMethod(text, "casefold", NULL);
    if (folded == NULL) {
        return -1;
    }
    int found;
    if (!PyUnicode_Check(folded)) {
        found = 1;  /* cannot happen for an exact str: let Python decide */
    }
    else if (PyUnicode_IS_ASCII(folded)) {
        found = gate_finds(gate, (const unsigned char *)PyUnicode_DATA(folded),
                           PyUnicode_GET_LENGTH(folded));
    }
    else {
        found = wide_finds(gate, 1, folded);
    }
    Py_DECREF(folded);
    return found;
}

/* 1 when ``text`` must be asked about (not an exact str, or an anchor is in it),
 * 0 when it holds no anchor at all. */
static int
gate_may_hold(GateObject *gate, PyObject *text)
{
    if (!PyUnicode_CheckExact(text)) {
        return 1;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(text) < 0) {
        return -1;
    }
#endif
    if (!PyUnicode_IS_ASCII(text)) {
        return wide_may_hold(gate, text);
    }
    return gate_finds(gate, (const unsigned char *)PyUnicode_DATA(text),
                      PyUnicode_GET_LENGTH(text));
}

/* ``question(text)`` taken as a truth value: 1, 0, or -1 with an exception set. */
static int
ask(PyObject *question, PyObject *text)
{
    PyObject *answer = PyObject_CallOneArg(question, text);
    if (answer == NULL) {
        return -1;
    }
    int truth = PyObject_IsTrue(answer);
    Py_DECREF(answer);
    return truth;
}

/* The gate's answer for ``text``: 1 secret-shaped, 0 not, -1 error. */
static int
gate_answer(GateObject *gate, PyObject *text)
{
    int may = gate_may_hold(gate, text);
    if (may <= 0 || gate->fallback == NULL) {
        return may;
    }
    return ask(gate->fallback, text);
}

/* Copy the usable anchors of ``tuple`` (bytes kept in ``gate->keep``) after those taken.
 * Non-ASCII anchors are left out: an ASCII text cannot hold one, and any other text then
 * goes to the fallback. So is a folded anchor with an upper-case letter: the lower-cased text it
 * is compared with never holds one, as in Python. */
static int
gate_take(GateObject *gate, PyObject *tuple, int folded, Py_ssize_t *count)
{
    Py_ssize_t n = PyTuple_GET_SIZE(tuple);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *anchor = PyTuple_GET_ITEM(tuple, i);
        if (!PyUnicode_Check(anchor)) {
            PyErr_SetString(PyExc_TypeError, "AnchorGate: anchors must be str");
            return -1;
        }
#if PY_VERSION_HEX < 0x030C0000
        if (PyUnicode_READY(anchor) < 0) {
            return -1;
        }
#endif
        if (!PyUnicode_IS_ASCII(anchor)) {
            gate->wide_to_fallback = 1;
            continue;
        }
        Py_ssize_t size = PyUnicode_GET_LENGTH(anchor);
        const unsigned char *data = (const unsigned char *)PyUnicode_DATA(anchor);
        int upper = 0;
        for (Py_ssize_t j = 0; j < size; j++) {
            upper |= data[j] >= 'A' && data[j] <= 'Z';
        }
        if (folded && upper) {
            continue;
        }
        if (size == 0) {
            gate->always = 1;
            continue;
        }
        PyObject *raw = PyBytes_FromStringAndSize((const char *)data, size);
        if (raw == NULL) {
            return -1;
        }
        int added = PyList_Append(gate->keep, raw);
        Py_DECREF(raw);  /* the list holds it */
        if (added < 0) {
            return -1;
        }
        const unsigned char *text = (const unsigned char *)PyBytes_AS_STRING(raw);
        gate->anchors[gate->case_count + gate->folded_count] = (Anchor){text, size};
        (*count)++;
    }
    return 0;
}

static inline unsigned char
upper(unsigned char c)
{
    return (c >= 'a' && c <= 'z') ? (unsigned char)(c - 32) : c;
}

static inline void
pair_mark(unsigned char *pairs, unsigned char a, unsigned char b)
{
    unsigned int bit = (unsigned int)a << 8 | b;
    pairs[bit >> 3] |= (unsigned char)(1u << (bit & 7));
}

static int
by_first_byte(const void *a, const void *b)
{
    return (int)((const Anchor *)a)->text[0] - (int)((const Anchor *)b)->text[0];
}

/* Sort one kind's anchors by first byte and note where each byte's run starts, which byte
 * pairs begin an anchor, and which bytes are whole anchors. */
static void
gate_index(GateObject *gate, int kind, Anchor *anchors, Py_ssize_t count)
{
    qsort(anchors, (size_t)count, sizeof(Anchor), by_first_byte);
    Py_ssize_t k = 0;
    for (int c = 0; c < 256; c++) {
        gate->from[kind][c] = k;
        while (k < count && anchors[k].text[0] == c) {
            const Anchor *anchor = &anchors[k];
            if (anchor->size == 1) {
                gate->single[c] = 1;
                gate->single[upper((unsigned char)c)] |= (unsigned char)kind;
            }
            else {
                unsigned char b = anchor->text[1];
                pair_mark(gate->pairs[kind], (unsigned char)c, b);
                pair_mark(gate->any_pair, (unsigned char)c, b);
                if (kind) {  /* folded: the text may have either case of each byte */
                    pair_mark(gate->any_pair, upper((unsigned char)c), b);
                    pair_mark(gate->any_pair, (unsigned char)c, upper(b));
                    pair_mark(gate->any_pair, upper((unsigned char)c), upper(b));
                }
            }
            k++;
        }
    }
    gate->from[kind][256] = k;
}

static PyObject *
gate_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *case_anchors, *folded_anchors, *fallback = Py_None;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "AnchorGate() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O!O!|O:AnchorGate", &PyTuple_Type, &case_anchors,
                          &PyTuple_Type, &folded_anchors, &fallback)) {
        return NULL;
    }
    if (fallback != Py_None && !PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "AnchorGate: fallback must be callable or None");
        return NULL;
    }
    GateObject *gate = (GateObject *)type->tp_alloc(type, 0);
    if (gate == NULL) {
        return NULL;
    }
    Py_ssize_t total = PyTuple_GET_SIZE(case_anchors) + PyTuple_GET_SIZE(folded_anchors);
    gate->anchors = PyMem_Calloc((size_t)(total > 0 ? total : 1), sizeof(Anchor));
    gate->keep = PyList_New(0);
    if (gate->anchors == NULL || gate->keep == NULL) {
        Py_DECREF(gate);
        return PyErr_NoMemory();
    }
    gate->fallback = fallback == Py_None ? NULL : Py_NewRef(fallback);
    /* The case anchors sit first, the folded ones after them. */
    if (gate_take(gate, case_anchors, 0, &gate->case_count) < 0
        || gate_take(gate, folded_anchors, 1, &gate->folded_count) < 0) {
        Py_DECREF(gate);
        return NULL;
    }
    gate_index(gate, 0, gate->anchors, gate->case_count);
    gate_index(gate, 1, gate->anchors + gate->case_count, gate->folded_count);
    return (PyObject *)gate;
}

static int
gate_traverse(GateObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->fallback);
    return 0;
}

static int
gate_clear(GateObject *self)
{
    Py_CLEAR(self->fallback);
    return 0;
}

static void
gate_dealloc(GateObject *self)
{
    PyObject_GC_UnTrack(self);
    gate_clear(self);
    Py_CLEAR(self->keep);
    PyMem_Free(self->anchors);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
gate_call(GateObject *self, PyObject *args, PyObject *kwargs)
{
    PyObject *text;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "AnchorGate takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O:AnchorGate", &text)) {
        return NULL;
    }
    int answer = gate_answer(self, text);
    if (answer < 0) {
        return NULL;
    }
    return PyBool_FromLong(answer);
}

static PyObject *
gate_may_hold_method(GateObject *self, PyObject *text)
{
    int may = gate_may_hold(self, text);
    if (may < 0) {
        return NULL;
    }
    return PyBool_FromLong(may);
}

static PyMethodDef gate_methods[] = {
    {"may_hold", (PyCFunction)gate_may_hold_method, METH_O,
     "may_hold(text): whether the text must be asked about (an anchor, or not ASCII)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject GateType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pytest_replay.capture._textscan.AnchorGate",
    .tp_basicsize = sizeof(GateObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "AnchorGate(case_anchors, folded_anchors, fallback=None, /): is an anchor in a text",
    .tp_new = gate_new,
    .tp_dealloc = (destructor)gate_dealloc,
    .tp_traverse = (traverseproc)gate_traverse,
    .tp_clear = (inquiry)gate_clear,
    .tp_call = (ternaryfunc)gate_call,
    .tp_methods = gate_methods,
};

/* ------------------------------------------------------------------------------------ */
/* shape()                                                                               */

typedef struct {
    PyObject *node;  /* owned */
    long depth;
} Entry;

typedef struct {
    Entry *entries;
    Py_ssize_t size;
    Py_ssize_t capacity;
} Stack;

static int
stack_push(Stack *stack, PyObject *node, long depth)
{
    if (stack->size == stack->capacity) {
        Py_ssize_t capacity = stack->capacity ? stack->capacity * 2 : 64;
        Entry *grown = PyMem_Realloc(stack->entries, (size_t)capacity * sizeof(Entry));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        stack->entries = grown;
        stack->capacity = capacity;
    }
    stack->entries[stack->size++] = (Entry){Py_NewRef(node), depth};
    return 0;
}

static void
stack_free(Stack *stack)
{
    for (Py_ssize_t i = 0; i < stack->size; i++) {
        Py_DECREF(stack->entries[i].node);
    }
    PyMem_Free(stack->entries);
}

typedef struct {
    Py_ssize_t max_str;
    Py_ssize_t max_items;
    long max_depth;
    Py_ssize_t min_scanned;
    PyObject *is_secret;
    PyObject *verdicts;
    PyObject *safe_keys;
    PyObject *secret_text;  /* NULL: values are not scanned */
    PyObject *children;
    Stack stack;
    int plain;
    long budget;
} Look;

/* A str: 0 fine, 1 not plain, -1 error (plain.shape's test for strings). */
static int
look_text(Look *look, PyObject *text)
{
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(text) < 0) {
        return -1;
    }
#endif
    Py_ssize_t size = PyUnicode_GET_LENGTH(text);
    if (size > look->max_str || !PyUnicode_IS_ASCII(text)) {
        return 1;
    }
    if (look->secret_text == NULL || size < look->min_scanned) {
        return 0;
    }
    if (Py_TYPE(look->secret_text) == &GateType) {
        return gate_answer((GateObject *)look->secret_text, text);
    }
    return ask(look->secret_text, text);
}

/* An int: whether it is outside the signed 64-bit range (orjson's). */
static int
int_too_big(PyObject *value)
{
    int overflow = 0;
    long long unused = PyLong_AsLongLongAndOverflow(value, &overflow);
    (void)unused;
    if (overflow == 0 && PyErr_Occurred()) {
        PyErr_Clear();
        return 1;
    }
    return overflow != 0;
}

/* One element of a container: scalars checked here, anything else stacked. */
static int
look_item(Look *look, PyObject *item, long inner)
{
    PyTypeObject *type = Py_TYPE(item);
    look->budget--;
    if (type == &PyUnicode_Type) {
        int bad = look_text(look, item);
        if (bad < 0) {
            return -1;
        }
        if (bad) {
            look->plain = 0;
        }
    }
    else if (type == &PyFloat_Type) {
        if (!isfinite(PyFloat_AS_DOUBLE(item))) {
            look->plain = 0;
        }
    }
    else if (type == &PyLong_Type) {
        if (int_too_big(item)) {
            look->plain = 0;
        }
    }
    else if (!(type == &PyBool_Type || item == Py_None)) {
        return stack_push(&look->stack, item, inner);
    }
    return 0;
}

/* Whether values under ``key`` are fine (1), secret or ``$type`` (0); -1 error. */
static int
key_fine(Look *look, PyObject *key)
{
    PyObject *verdict = PyDict_GetItemWithError(look->verdicts, key);
    int secret;
    if (verdict != NULL && verdict != Py_None) {
        Py_INCREF(verdict);  /* borrowed; its truth may be Python code */
        secret = PyObject_IsTrue(verdict);
        Py_DECREF(verdict);
    }
    else {
        if (verdict == NULL && PyErr_Occurred()) {
            return -1;
        }
        secret = ask(look->is_secret, key);
    }
    if (secret < 0) {
        return -1;
    }
    if (secret) {
        return 0;
    }
    int tag = PyUnicode_Compare(key, s_tag);
    if (tag == -1 && PyErr_Occurred()) {
        return -1;
    }
    return tag != 0;
}

/* One key of a dict whose keys are not all known plain (owned by the caller): 0 or -1. */
static int
look_key(Look *look, PyObject *key, long inner)
{
    if (!PyUnicode_CheckExact(key)) {
        look->plain = 0;
        return stack_push(&look->stack, key, inner);
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(key) < 0) {
        return -1;
    }
#endif
    if (!PyUnicode_IS_ASCII(key)) {
        look->plain = 0;
        return stack_push(&look->stack, key, inner);
    }
    int fine = key_fine(look, key);
    if (fine > 0 && PySet_GET_SIZE(look->safe_keys) < SAFE_KEYS) {
        fine = PySet_Add(look->safe_keys, key) < 0 ? -1 : 1;
    }
    if (fine < 0) {
        return -1;
    }
    if (!fine) {
        look->plain = 0;
    }
    return 0;
}

static int
look_dict(Look *look, PyObject *node, long inner)
{
    Py_ssize_t size = PyDict_GET_SIZE(node);
    if (size > look->max_items) {
        look->plain = 0;
    }
    else {
        int tagged = PyDict_Contains(node, s_tag);
        if (tagged < 0) {
            return -1;
        }
        if (tagged) {
            look->plain = 0;
        }
    }
    /* In Python's order: are all keys known plain; if not, judge them (stacking odd keys);
     * then the values. Every key and value is owned before code can run (a key's
     * __eq__, is_secret, secret_text), which may change the dict. */
    Py_ssize_t pos = 0, seen = 0;
    PyObject *key, *value;
    int all_safe = size <= PySet_GET_SIZE(look->safe_keys);
    while (all_safe && PyDict_Next(node, &pos, &key, NULL)) {
        Py_INCREF(key);
        all_safe = PySet_Contains(look->safe_keys, key);
        Py_DECREF(key);
        if (all_safe < 0) {
            return -1;
        }
    }
    pos = 0;
    while (!all_safe && seen < look->max_items && PyDict_Next(node, &pos, &key, NULL)) {
        seen++;
        Py_INCREF(key);
        int fine = look_key(look, key, inner);
        Py_DECREF(key);
        if (fine < 0) {
            return -1;
        }
    }
    pos = 0;
    seen = 0;
    while (seen < look->max_items && PyDict_Next(node, &pos, NULL, &value)) {
        seen++;
        Py_INCREF(value);
        int done = look_item(look, value, inner);
        Py_DECREF(value);
        if (done < 0) {
            return -1;
        }
    }
    return 0;
}

static int
look_list(Look *look, PyObject *node, long inner)
{
    Py_ssize_t limit = PyList_GET_SIZE(node);
    if (limit > look->max_items) {
        look->plain = 0;
        limit = look->max_items;
    }
    for (Py_ssize_t i = 0; i < limit && i < PyList_GET_SIZE(node); i++) {
        PyObject *item = Py_NewRef(PyList_GET_ITEM(node, i));
        int done = look_item(look, item, inner);
        Py_DECREF(item);
        if (done < 0) {
            return -1;
        }
    }
    return 0;
}

static int
look_other(Look *look, PyObject *node, long inner)
{
    look->plain = 0;
    PyObject *items = PyObject_CallFunction(look->children, "OOn", node,
                                            (PyObject *)Py_TYPE(node), look->max_items);
    if (items == NULL) {
        return -1;
    }
    PyObject *iterator = PyObject_GetIter(items);
    Py_DECREF(items);
    if (iterator == NULL) {
        return -1;
    }
    PyObject *item;
    while ((item = PyIter_Next(iterator)) != NULL) {
        int done = look_item(look, item, inner);
        Py_DECREF(item);
        if (done < 0) {
            Py_DECREF(iterator);
            return -1;
        }
    }
    Py_DECREF(iterator);
    return PyErr_Occurred() ? -1 : 0;
}

/* One node taken off the stack: 0 done, 2 HUGE, -1 error. */
static int
look_node(Look *look, PyObject *node, long depth)
{
    PyTypeObject *type = Py_TYPE(node);
    if (type == &PyUnicode_Type) {
        int bad = look_text(look, node);
        if (bad < 0) {
            return -1;
        }
        if (bad) {
            look->plain = 0;
        }
        return 0;
    }
    if (type == &PyLong_Type) {
        if (int_too_big(node)) {
            look->plain = 0;
        }
        return 0;
    }
    if (type == &PyFloat_Type) {
        if (!isfinite(PyFloat_AS_DOUBLE(node))) {
            look->plain = 0;
        }
        return 0;
    }
    if (type == &PyBool_Type || node == Py_None) {
        return 0;
    }
    if (depth >= look->max_depth) {
        look->plain = 0;
        return 0;
    }
    int done;
    if (type == &PyList_Type) {
        done = look_list(look, node, depth + 1);
    }
    else if (type == &PyDict_Type) {
        done = look_dict(look, node, depth + 1);
    }
    else {
        done = look_other(look, node, depth + 1);
    }
    if (done < 0) {
        return -1;
    }
    return look->budget < 0 ? HUGE : 0;
}

/* An int argument, past the 64-bit range clamped to its end (Python compares exactly: a
 * limit of 2**64 is "no limit" there and here). */
static int
clamped_ll(PyObject *number, long long *out)
{
    int overflow = 0;
    long long value = PyLong_AsLongLongAndOverflow(number, &overflow);
    if (value == -1 && !overflow && PyErr_Occurred()) {
        return -1;
    }
    *out = overflow > 0 ? LLONG_MAX : (overflow < 0 ? LLONG_MIN : value);
    return 0;
}

static int
clamped(PyObject *number, Py_ssize_t *out)
{
    long long value;
    if (clamped_ll(number, &value) < 0) {
        return -1;
    }
    *out = value > PY_SSIZE_T_MAX ? PY_SSIZE_T_MAX
           : (value < PY_SSIZE_T_MIN ? PY_SSIZE_T_MIN : (Py_ssize_t)value);
    return 0;
}

static PyObject *
shape(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError, "shape() takes exactly 10 positional arguments");
        return NULL;
    }
    Look look = {0};
    long long max_depth;
    if (clamped(args[1], &look.max_str) < 0 || clamped(args[2], &look.max_items) < 0
        || clamped(args[9], &look.min_scanned) < 0 || clamped_ll(args[3], &max_depth) < 0) {
        return NULL;
    }
    look.max_depth = max_depth > LONG_MAX ? LONG_MAX : (max_depth < LONG_MIN ? LONG_MIN
                                                                            : (long)max_depth);
    look.is_secret = args[4];
    look.verdicts = args[5];
    look.safe_keys = args[6];
    look.secret_text = args[7] == Py_None ? NULL : args[7];
    look.children = args[8];
    if (!PyDict_Check(look.verdicts) || !PySet_Check(look.safe_keys)
        || !PyCallable_Check(look.is_secret) || !PyCallable_Check(look.children)
        || (look.secret_text != NULL && !PyCallable_Check(look.secret_text))) {
        PyErr_SetString(PyExc_TypeError,
                        "shape(value, max_str, max_items, max_depth, is_secret: callable,"
                        " verdicts: dict, safe_keys: set, secret_text: callable | None,"
                        " children: callable, min_scanned)");
        return NULL;
    }
    look.plain = 1;
    look.budget = BUDGET;
    int result = 0;
    if (stack_push(&look.stack, args[0], 0) < 0) {
        return NULL;
    }
    while (look.stack.size > 0) {
        Entry entry = look.stack.entries[--look.stack.size];
        result = look_node(&look, entry.node, entry.depth);
        Py_DECREF(entry.node);
        if (result != 0) {
            break;
        }
    }
    stack_free(&look.stack);
    if (result < 0) {
        return NULL;
    }
    return PyLong_FromLong(result == HUGE ? HUGE : (look.plain ? PLAIN : BOUNDED));
}

/* ------------------------------------------------------------------------------------ */
/* scrub_encoded()                                                                       */

typedef struct {
    PyObject *structural;
    GateObject *gate;
    Py_ssize_t min_scanned;
    PyObject *scrub;
} Scrub;

static PyObject *scrub_value(Scrub *scrub, PyObject *value);

/* A str with its secret-shaped parts replaced (a new reference; the same object if none). */
static PyObject *
scrub_text(Scrub *scrub, PyObject *text)
{
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(text) < 0) {
        return NULL;
    }
#endif
    if (PyUnicode_GET_LENGTH(text) < scrub->min_scanned) {
        return Py_NewRef(text);
    }
    int may = gate_may_hold(scrub->gate, text);
    if (may < 0) {
        return NULL;
    }
    if (!may) {
        return Py_NewRef(text);
    }
    return PyObject_CallOneArg(scrub->scrub, text);
}

/* One element of a container: text scrubbed, containers walked, the rest unchanged. */
static PyObject *
scrub_item(Scrub *scrub, PyObject *item)
{
    PyTypeObject *type = Py_TYPE(item);
    if (type == &PyUnicode_Type) {
        return scrub_text(scrub, item);
    }
    if (type == &PyDict_Type || type == &PyList_Type) {
        return scrub_value(scrub, item);
    }
    return Py_NewRef(item);
}

static PyObject *
scrub_dict(Scrub *scrub, PyObject *value)
{
    PyObject *changed = NULL, *key, *item;
    Py_ssize_t pos = 0;
    Py_INCREF(value);  /* scrub is Python: keep the dict alive through it */
    while (PyDict_Next(value, &pos, &key, &item)) {
        /* Owned before anything can run code: a key's __eq__ may change the dict. */
        Py_INCREF(key);
        Py_INCREF(item);
        int structural = PySet_Contains(scrub->structural, key);
        if (structural != 0) {
            Py_DECREF(item);
            Py_DECREF(key);
            if (structural < 0) {
                goto error;
            }
            continue;
        }
        PyObject *fresh = scrub_item(scrub, item);
        int failed = fresh == NULL;
        if (!failed && fresh != item) {
            if (changed == NULL) {
                changed = PyDict_Copy(value);
            }
            failed = changed == NULL || PyDict_SetItem(changed, key, fresh) < 0;
        }
        Py_XDECREF(fresh);
        Py_DECREF(item);
        Py_DECREF(key);
        if (failed) {
            goto error;
        }
    }
    if (changed != NULL) {
        Py_DECREF(value);
        return changed;
    }
    return value;
error:
    Py_XDECREF(changed);
    Py_DECREF(value);
    return NULL;
}

static PyObject *
scrub_list(Scrub *scrub, PyObject *value)
{
    PyObject *copied = NULL;
    Py_INCREF(value);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(value); i++) {
        PyObject *item = PyList_GET_ITEM(value, i);
        PyTypeObject *type = Py_TYPE(item);
        if (type != &PyUnicode_Type && type != &PyDict_Type && type != &PyList_Type) {
            continue;  /* numbers hold no text */
        }
        Py_INCREF(item);
        PyObject *fresh = scrub_item(scrub, item);
        int same = fresh == item;
        Py_DECREF(item);
        if (fresh == NULL) {
            goto error;
        }
        if (same) {
            Py_DECREF(fresh);
            continue;
        }
        if (copied == NULL) {
            copied = PyList_GetSlice(value, 0, PyList_GET_SIZE(value));
            if (copied == NULL) {
                Py_DECREF(fresh);
                goto error;
            }
        }
        if (i >= PyList_GET_SIZE(copied)) {
            Py_DECREF(fresh);  /* the list shrank under a callback: keep what is there */
            break;
        }
        PyList_SetItem(copied, i, fresh);  /* steals fresh */
    }
    if (copied != NULL) {
        Py_DECREF(value);
        return copied;
    }
    return value;
error:
    Py_XDECREF(copied);
    Py_DECREF(value);
    return NULL;
}

static PyObject *
scrub_value(Scrub *scrub, PyObject *value)
{
    PyTypeObject *type = Py_TYPE(value);
    if (type == &PyUnicode_Type) {
        return scrub_text(scrub, value);
    }
    if (type != &PyDict_Type && type != &PyList_Type) {
        return Py_NewRef(value);
    }
    if (Py_EnterRecursiveCall(" while scanning a captured value for secrets")) {
        return NULL;
    }
    PyObject *out = type == &PyDict_Type ? scrub_dict(scrub, value) : scrub_list(scrub, value);
    Py_LeaveRecursiveCall();
    return out;
}

static PyObject *
scrub_encoded(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError,
                        "scrub_encoded() takes exactly 5 positional arguments");
        return NULL;
    }
    Scrub scrub = {args[1], (GateObject *)args[2], 0, args[4]};
    if (clamped(args[3], &scrub.min_scanned) < 0) {
        return NULL;
    }
    if (!PyAnySet_Check(scrub.structural) || Py_TYPE(args[2]) != &GateType
        || !PyCallable_Check(scrub.scrub)) {
        PyErr_SetString(PyExc_TypeError,
                        "scrub_encoded(value, structural: frozenset, gate: AnchorGate,"
                        " min_scanned: int, scrub: callable)");
        return NULL;
    }
    return scrub_value(&scrub, args[0]);
}

/* ------------------------------------------------------------------------------------ */

static PyMethodDef module_methods[] = {
    {"shape", (PyCFunction)(void (*)(void))shape, METH_FASTCALL,
     "shape(value, max_str, max_items, max_depth, is_secret, verdicts, safe_keys,"
     " secret_text, children, min_scanned): plain.shape in C."},
    {"scrub_encoded", (PyCFunction)(void (*)(void))scrub_encoded, METH_FASTCALL,
     "scrub_encoded(value, structural, gate, min_scanned, scrub):"
     " Redaction.scrub_encoded in C."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef textscan_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pytest_replay.capture._textscan",
    .m_doc = "Capture's value walks in C (plain.shape, Redaction.scrub_encoded, anchors).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__textscan(void)
{
    s_tag = PyUnicode_InternFromString("$type");
    if (s_tag == NULL || PyType_Ready(&GateType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&textscan_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "AnchorGate", (PyObject *)&GateType) < 0
        || PyModule_AddIntConstant(module, "INTERFACE", INTERFACE) < 0
        || PyModule_AddIntConstant(module, "PLAIN", PLAIN) < 0
        || PyModule_AddIntConstant(module, "BOUNDED", BOUNDED) < 0
        || PyModule_AddIntConstant(module, "HUGE", HUGE) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
