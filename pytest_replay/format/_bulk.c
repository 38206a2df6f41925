/* The reader's bulk path and the model builder in C (loaded by native.py).
 *
 * region(): the lines of a chunk checked and kept in one call. bulk.py
 * (orjson + shape checks) is the reference; this does the same job without
 * building the events: it checks each line against the JSON
 * grammar (as orjson holds it: strict UTF-8, no lone surrogates, no NaN or
 * infinity, nesting bounded), checks the types of the top-level fields the
 * format names, and copies out the few fields the model reads (type, ids,
 * timestamp, error flag) into a LineEvent that keeps where the line starts in
 * the chunk the reader read (no copy of the line is made); the event is decoded
 * by orjson on first use.
 *
 * It accepts a block only when it is sure the Python reader would accept every
 * line the same way. Anything else makes it answer None and the Python reader
 * goes through the block line by line, which names the problem. "Anything
 * else" is generous on purpose: a syntax error, a wrong field type, a missing
 * event_type, an unknown event type or version, but also what is merely rare
 * and would need care to get exactly right here: an escape in a top-level key
 * or in a copied string, a field the format checks written twice, integers of
 * 20 digits or more (orjson reads those as floats, the reader exactly), an
 * exponent of three digits, a blank line.
 *
 * tree(): model.py's _Builder for the usual trace (see the section below);
 * anything it would have to report goes to the Python builder.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <stdint.h>
#if PY_VERSION_HEX < 0x030C0000
#include <structmember.h>
#else
#define T_OBJECT_EX Py_T_OBJECT_EX
#define READONLY Py_READONLY
#endif
#include <string.h>

#ifdef Py_GIL_DISABLED
#error "the bulk reader relies on the GIL; free-threaded builds use bulk.py"
#endif

/* Bumped whenever what bulk.py and this module expect of each other changes. */
#define INTERFACE 3

#define MAX_DEPTH 1000 /* orjson's limit is 1024: deeper lines go to Python, which says so */
#define MAX_FIELDS 64
/* A LineEvent: line, kind, correlation_id, parent_id, timestamp_ns, error, source,
 * decoded, start (line_event.py). */
#define LINE_EVENT_ITEMS 9
#define MAX_NAME 40

/* Value types, as bits of a field's allowed mask (configure() hands the masks over). */
enum {
    J_STR = 1, J_INT = 2, J_FLOAT = 4, J_BOOL = 8, J_NULL = 16, J_OBJ = 32, J_ARR = 64,
};

/* The fields copied into the LineEvent; their index in g_field_names is fixed. */
enum { F_EVENT_TYPE, F_CORRELATION_ID, F_PARENT_ID, F_TIMESTAMP, F_ERROR, F_VERSION, F_COPIED };
static const char *const COPIED_NAMES[F_COPIED] = {
    "event_type", "correlation_id", "parent_correlation_id", "timestamp_ns", "error", "v",
};

typedef struct {
    char name[MAX_NAME];
    Py_ssize_t length;
    int allowed;
} Field;

static Field g_fields[MAX_FIELDS];
static int g_field_count;
/* The fields' indexes by name length: those of length n are g_by_length[g_first[n] ..
 * g_first[n + 1]), so finding a key compares it with one to three names, not all. */
static signed char g_by_length[MAX_FIELDS];
static int g_first[MAX_NAME + 1];
static PyObject *g_kinds;      /* tuple of the known event types (canonical str objects) */
static PyTypeObject *g_line_event;
static int g_configured;

#define ONES ((uint64_t)0x0101010101010101ULL)

/* Bytes that may appear as they are inside a JSON string: printable ASCII minus " and \. */
static unsigned char g_plain[256];

/* ------------------------------------------------------------------------------------ */
/* The grammar. Every scanner returns 0 when the text is good and this module is sure of it,
 * -1 otherwise (bad, or to be left to Python: the caller cannot tell and need not). */

typedef struct {
    const unsigned char *p;
    const unsigned char *end;
} Cursor;

static inline void
skip_space(Cursor *c)
{
    while (c->p < c->end) {
        unsigned char ch = *c->p;
        if (ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n') {
            return;
        }
        c->p++;
    }
}

static inline int
hex4(const unsigned char *p, unsigned int *out)
{
    unsigned int value = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char ch = p[i];
        value <<= 4;
        if (ch >= '0' && ch <= '9') {
            value |= (unsigned int)(ch - '0');
        }
        else if (ch >= 'a' && ch <= 'f') {
            value |= (unsigned int)(ch - 'a' + 10);
        }
        else if (ch >= 'A' && ch <= 'F') {
            value |= (unsigned int)(ch - 'A' + 10);
        }
        else {
            return -1;
        }
    }
    *out = value;
    return 0;
}

/* One UTF-8 sequence starting at a byte >= 0x80 (Unicode's table 3-7: no overlong forms,
 * no surrogates, nothing past U+10FFFF). */
static inline int
utf8_sequence(Cursor *c)
{
    const unsigned char *p = c->p;
    Py_ssize_t left = c->end - p;
    unsigned char b0 = p[0];
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        if (left < 2 || (p[1] & 0xC0) != 0x80) {
            return -1;
        }
        c->p += 2;
        return 0;
    }
    if (b0 >= 0xE0 && b0 <= 0xEF) {
        if (left < 3 || (p[2] & 0xC0) != 0x80) {
            return -1;
        }
        unsigned char b1 = p[1];
        if (b0 == 0xE0 ? (b1 < 0xA0 || b1 > 0xBF)
            : b0 == 0xED ? (b1 < 0x80 || b1 > 0x9F)
                         : (b1 & 0xC0) != 0x80) {
            return -1;
        }
        c->p += 3;
        return 0;
    }
    if (b0 >= 0xF0 && b0 <= 0xF4) {
        if (left < 4 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) {
            return -1;
        }
        unsigned char b1 = p[1];
        if (b0 == 0xF0 ? (b1 < 0x90 || b1 > 0xBF)
            : b0 == 0xF4 ? (b1 < 0x80 || b1 > 0x8F)
                         : (b1 & 0xC0) != 0x80) {
            return -1;
        }
        c->p += 4;
        return 0;
    }
    return -1;
}

/* A string, the cursor on its opening quote. On success the cursor is past the closing
 * quote, and *escaped / *ascii say whether it held an escape / only ASCII. */
static int
scan_string(Cursor *c, int *escaped, int *ascii)
{
    const unsigned char *p = c->p + 1;
    const unsigned char *end = c->end;
    *escaped = 0;
    *ascii = 1;
    for (;;) {
        /* Eight bytes at a time while none is a quote, a backslash, a control byte or
         * past ASCII (the bit tricks: a byte is zero, or below 0x20, when its high bit
         * comes on by subtracting without borrowing from its own high bit). */
        while (end - p >= 8) {
            uint64_t word;
            memcpy(&word, p, 8);
            uint64_t quote = word ^ (ONES * '"'), slash = word ^ (ONES * '\\');
            uint64_t special = ((quote - ONES) & ~quote) | ((slash - ONES) & ~slash)
                               | ((word - ONES * 0x20) & ~word) | word;
            if (special & (ONES * 0x80)) {
                break;
            }
            p += 8;
        }
        while (p < end && g_plain[*p]) {
            p++;
        }
        if (p >= end) {
            return -1;
        }
        unsigned char ch = *p;
        if (ch == '"') {
            c->p = p + 1;
            return 0;
        }
        if (ch == '\\') {
            *escaped = 1;
            if (p + 1 >= end) {
                return -1;
            }
            switch (p[1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                p += 2;
                continue;
            case 'u': {
                unsigned int unit;
                if (end - p < 6 || hex4(p + 2, &unit) < 0) {
                    return -1;
                }
                p += 6;
                if (unit >= 0xDC00 && unit <= 0xDFFF) {
                    return -1; /* a low surrogate first */
                }
                if (unit >= 0xD800 && unit <= 0xDBFF) {
                    unsigned int low;
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &low) < 0
                        || low < 0xDC00 || low > 0xDFFF) {
                        return -1; /* a high surrogate alone */
                    }
                    p += 6;
                }
                continue;
            }
            default:
                return -1;
            }
        }
        if (ch < 0x20) {
            return -1; /* a control character must be escaped */
        }
        *ascii = 0;
        c->p = p;
        if (utf8_sequence(c) < 0) {
            return -1;
        }
        p = c->p;
    }
}

/* A number, the cursor on its first character. *type is J_INT or J_FLOAT; an integer's
 * value (at most 19 digits, so it fits) is in *magnitude, its sign in *negative. */
static int
scan_number(Cursor *c, int *type, uint64_t *magnitude, int *negative)
{
    const unsigned char *p = c->p;
    const unsigned char *end = c->end;
    uint64_t value = 0;
    *negative = 0;
    if (p < end && *p == '-') {
        *negative = 1;
        p++;
    }
    if (p >= end) {
        return -1;
    }
    const unsigned char *digits = p;
    if (*p == '0') {
        p++;
        if (p < end && *p >= '0' && *p <= '9') {
            return -1; /* a leading zero */
        }
    }
    else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') {
            if (p - digits == 19) {
                return -1; /* past 64 bits maybe: the reader reads these exactly */
            }
            value = value * 10 + (uint64_t)(*p - '0'); /* 19 digits at most: no wrap */
            p++;
        }
    }
    else {
        return -1;
    }
    if (*negative && p - digits > 18) {
        return -1; /* likewise below -2**63 */
    }
    *type = J_INT;
    if (p < end && *p == '.') {
        p++;
        const unsigned char *fraction = p;
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
        if (p == fraction) {
            return -1;
        }
        *type = J_FLOAT;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }
        const unsigned char *exponent = p;
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
        if (p == exponent || p - exponent > 2) {
            return -1; /* none, or so large it may overflow: orjson refuses infinity */
        }
        *type = J_FLOAT;
    }
    *magnitude = value;
    c->p = p;
    return 0;
}

static inline int
scan_literal(Cursor *c, const char *word, Py_ssize_t length)
{
    if (c->end - c->p < length || memcmp(c->p, word, (size_t)length) != 0) {
        return -1;
    }
    c->p += length;
    return 0;
}

static int scan_value(Cursor *c, int depth, int *type);

static int
scan_container(Cursor *c, int depth, unsigned char close)
{
    int type;
    int escaped, ascii;
    if (depth > MAX_DEPTH) {
        return -1;
    }
    c->p++;
    skip_space(c);
    if (c->p < c->end && *c->p == close) {
        c->p++;
        return 0;
    }
    for (;;) {
        if (close == '}') {
            if (c->p >= c->end || *c->p != '"' || scan_string(c, &escaped, &ascii) < 0) {
                return -1;
            }
            skip_space(c);
            if (c->p >= c->end || *c->p != ':') {
                return -1;
            }
            c->p++;
            skip_space(c);
        }
        if (scan_value(c, depth, &type) < 0) {
            return -1;
        }
        skip_space(c);
        if (c->p >= c->end) {
            return -1;
        }
        if (*c->p == ',') {
            c->p++;
            skip_space(c);
            continue;
        }
        if (*c->p == close) {
            c->p++;
            return 0;
        }
        return -1;
    }
}

/* Any value, the cursor on its first character; *type says which kind it was. */
static int
scan_value(Cursor *c, int depth, int *type)
{
    uint64_t magnitude;
    int negative, escaped, ascii;
    if (c->p >= c->end) {
        return -1;
    }
    switch (*c->p) {
    case '"':
        *type = J_STR;
        return scan_string(c, &escaped, &ascii);
    case '{':
        *type = J_OBJ;
        return scan_container(c, depth + 1, '}');
    case '[':
        *type = J_ARR;
        return scan_container(c, depth + 1, ']');
    case 't':
        *type = J_BOOL;
        return scan_literal(c, "true", 4);
    case 'f':
        *type = J_BOOL;
        return scan_literal(c, "false", 5);
    case 'n':
        *type = J_NULL;
        return scan_literal(c, "null", 4);
    default:
        return scan_number(c, type, &magnitude, &negative);
    }
}

/* ------------------------------------------------------------------------------------ */
/* One line: its top-level object, field by field. */

typedef struct {
    const unsigned char *start; /* of the value (strings: past the quote) */
    Py_ssize_t length;          /* strings: of the content */
    int type;
    int ascii;
    uint64_t magnitude;         /* integers */
    int negative;
} Copied;

static inline int
field_index(const unsigned char *name, Py_ssize_t length)
{
    if (length >= MAX_NAME) {
        return -1;
    }
    for (int at = g_first[length]; at < g_first[length + 1]; at++) {
        int i = g_by_length[at];
        const Field *field = &g_fields[i];
        if (field->name[0] == (char)name[0] && memcmp(field->name, name, (size_t)length) == 0) {
            return i;
        }
    }
    return -1;
}

/* Check one line and fill copied[] with the fields the LineEvent keeps. */
static int
scan_line(const unsigned char *start, Py_ssize_t length, Copied *copied)
{
    Cursor c = {start, start + length};
    uint64_t seen = 0;
    int escaped, ascii;
    memset(copied, 0, sizeof(Copied) * F_COPIED);
    skip_space(&c);
    if (c.p >= c.end || *c.p != '{') {
        return -1;
    }
    c.p++;
    skip_space(&c);
    if (c.p < c.end && *c.p == '}') {
        return -1; /* no event_type */
    }
    for (;;) {
        if (c.p >= c.end || *c.p != '"') {
            return -1;
        }
        const unsigned char *name = c.p + 1;
        if (scan_string(&c, &escaped, &ascii) < 0 || escaped) {
            return -1; /* an escaped key could spell a checked field's name */
        }
        int index = field_index(name, c.p - 1 - name);
        skip_space(&c);
        if (c.p >= c.end || *c.p != ':') {
            return -1;
        }
        c.p++;
        skip_space(&c);
        if (c.p >= c.end) {
            return -1;
        }
        const unsigned char *value = c.p;
        int type;
        if (index < 0) {
            if (scan_value(&c, 1, &type) < 0) {
                return -1;
            }
        }
        else {
            if (seen & ((uint64_t)1 << index)) {
                return -1; /* written twice: orjson keeps the last; rare enough for Python */
            }
            seen |= (uint64_t)1 << index;
            Copied *into = index < F_COPIED ? &copied[index] : NULL;
            if (*value == '"') {
                type = J_STR;
                if (scan_string(&c, &escaped, &ascii) < 0) {
                    return -1;
                }
                if (into != NULL) {
                    if (escaped) {
                        return -1;
                    }
                    into->start = value + 1;
                    into->length = c.p - 1 - (value + 1);
                    into->ascii = ascii;
                }
            }
            else if (*value == '-' || (*value >= '0' && *value <= '9')) {
                uint64_t magnitude;
                int negative;
                if (scan_number(&c, &type, &magnitude, &negative) < 0) {
                    return -1;
                }
                if (into != NULL) {
                    into->magnitude = magnitude;
                    into->negative = negative;
                }
            }
            else if (scan_value(&c, 1, &type) < 0) {
                return -1;
            }
            if (!(g_fields[index].allowed & type)) {
                return -1;
            }
            if (into != NULL) {
                into->type = type;
                if (type == J_BOOL) {
                    into->magnitude = *value == 't';
                }
            }
        }
        skip_space(&c);
        if (c.p >= c.end) {
            return -1;
        }
        if (*c.p == ',') {
            c.p++;
            skip_space(&c);
            continue;
        }
        if (*c.p != '}') {
            return -1;
        }
        c.p++;
        skip_space(&c);
        if (c.p != c.end) {
            return -1; /* something after the object */
        }
        return copied[F_EVENT_TYPE].type == J_STR ? 0 : -1;
    }
}

/* ------------------------------------------------------------------------------------ */
/* From the copied fields to the LineEvent's objects. */

static PyObject *
string_of(const Copied *field)
{
    if (field->ascii) {
        PyObject *text = PyUnicode_New(field->length, 127);
        if (text != NULL) {
            memcpy(PyUnicode_DATA(text), field->start, (size_t)field->length);
        }
        return text;
    }
    return PyUnicode_DecodeUTF8((const char *)field->start, field->length, NULL);
}

static PyObject *
integer_of(const Copied *field)
{
    if (field->negative) {
        return PyLong_FromLongLong(-(long long)field->magnitude);
    }
    return PyLong_FromUnsignedLongLong(field->magnitude);
}

/* The event type: the canonical object of a known type, else the string if the caller's
 * set lets it pass (a type already warned about). NULL without an error: decline. */
static PyObject *
kind_of(const Copied *field, PyObject *kinds)
{
    Py_ssize_t count = PyTuple_GET_SIZE(g_kinds);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *known = PyTuple_GET_ITEM(g_kinds, i);
        if (PyUnicode_GET_LENGTH(known) == field->length && field->ascii
            && memcmp(PyUnicode_DATA(known), field->start, (size_t)field->length) == 0) {
            return Py_NewRef(known);
        }
    }
    PyObject *kind = string_of(field);
    if (kind == NULL) {
        return NULL;
    }
    int passes = PySet_Contains(kinds, kind);
    if (passes <= 0) {
        Py_DECREF(kind);
        return NULL;
    }
    return kind;
}

/* The version passes if absent or null, or if the caller's set holds it. -1: error. */
static int
version_passes(const Copied *field, PyObject *versions)
{
    if (field->type == 0 || field->type == J_NULL) {
        return 1;
    }
    if (!field->negative && field->magnitude == 1) {
        return 1; /* the version this reader knows */
    }
    PyObject *version = integer_of(field);
    if (version == NULL) {
        return -1;
    }
    int passes = PySet_Contains(versions, version);
    Py_DECREF(version);
    return passes;
}

/* One id string, the same object for every event with that id (``ids`` maps each to
 * itself); ``last`` remembers the previous one, as neighbouring events share ids. */
typedef struct {
    const unsigned char *start;
    Py_ssize_t length;
    PyObject *object; /* borrowed: the event made with it (in the list being built) holds it,
                       * whatever a lookup in the caller's sets or dict does to ``ids`` */
} LastId;

static PyObject *
id_of(const Copied *field, PyObject *ids, LastId *last)
{
    if (field->type != J_STR) {
        Py_RETURN_NONE;
    }
    if (last->object != NULL && last->length == field->length
        && memcmp(last->start, field->start, (size_t)field->length) == 0) {
        return Py_NewRef(last->object);
    }
    PyObject *text = string_of(field);
    if (text == NULL) {
        return NULL;
    }
    PyObject *same = PyDict_SetDefault(ids, text, text);
    Py_DECREF(text);
    if (same == NULL) {
        return NULL;
    }
    last->start = field->start;
    last->length = field->length;
    last->object = same;
    return Py_NewRef(same);
}

static PyObject *
make_event(PyObject *data, Py_ssize_t offset, Py_ssize_t number, Copied *copied,
           PyObject *kinds, PyObject *versions, PyObject *ids, PyObject *decoded, LastId *last_id,
           LastId *last_parent)
{
    int passes = version_passes(&copied[F_VERSION], versions);
    if (passes <= 0) {
        return passes < 0 ? NULL : Py_NewRef(Py_None);
    }
    PyObject *kind = kind_of(&copied[F_EVENT_TYPE], kinds);
    if (kind == NULL) {
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    }
    PyObject *event = g_line_event->tp_alloc(g_line_event, LINE_EVENT_ITEMS);
    if (event == NULL) {
        Py_DECREF(kind);
        return NULL;
    }
    /* Each item made only while none has failed: no call with an exception pending. Those
     * not made stay NULL, which the tuple's dealloc skips. */
    PyObject *items[LINE_EVENT_ITEMS] = {NULL};
    items[1] = kind;
    items[6] = Py_NewRef(data);
    items[7] = Py_NewRef(decoded);
    int failed = (items[0] = PyLong_FromSsize_t(number)) == NULL
                 || (items[2] = id_of(&copied[F_CORRELATION_ID], ids, last_id)) == NULL
                 || (items[3] = id_of(&copied[F_PARENT_ID], ids, last_parent)) == NULL
                 || (items[4] = copied[F_TIMESTAMP].type == J_INT
                                    ? integer_of(&copied[F_TIMESTAMP])
                                    : Py_NewRef(Py_None)) == NULL
                 || (items[8] = PyLong_FromSsize_t(offset)) == NULL;
    items[5] = copied[F_ERROR].type == J_BOOL
                   ? Py_NewRef(copied[F_ERROR].magnitude ? Py_True : Py_False)
                   : Py_NewRef(Py_None);
    for (int i = 0; i < LINE_EVENT_ITEMS; i++) {
        PyTuple_SET_ITEM(event, i, items[i]);
    }
    if (failed) {
        Py_DECREF(event);
        return NULL;
    }
    return event;
}

/* ------------------------------------------------------------------------------------ */
/* The module's functions. */

PyDoc_STRVAR(region_doc,
"region(data, start, stop, first, kinds, versions, ids, decoded) -> list[LineEvent] | None\n\n"
"The LineEvents of the lines of ``data[start:stop]`` (split at each newline,\n"
"numbered from ``first``), each keeping ``data``, where its line starts and\n"
"``decoded``; or None when any line needs the Python reader's look.");

static PyObject *
bulk_region(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "region() takes 8 arguments");
        return NULL;
    }
    PyObject *data = args[0];
    PyObject *kinds = args[4], *versions = args[5], *ids = args[6], *decoded = args[7];
    Py_ssize_t start, stop, first;
    if ((start = PyLong_AsSsize_t(args[1])) == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if ((stop = PyLong_AsSsize_t(args[2])) == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if ((first = PyLong_AsSsize_t(args[3])) == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (!g_configured) {
        PyErr_SetString(PyExc_RuntimeError, "configure() was not called");
        return NULL;
    }
    if (!PyBytes_CheckExact(data) || !PyAnySet_Check(kinds) || !PyAnySet_Check(versions)
        || !PyDict_CheckExact(ids)) {
        PyErr_SetString(PyExc_TypeError, "region() takes bytes, two sets and a dict");
        return NULL;
    }
    if (start < 0 || stop < start || stop > PyBytes_GET_SIZE(data)) {
        PyErr_SetString(PyExc_ValueError, "region() needs 0 <= start <= stop <= len(data)");
        return NULL;
    }
    PyObject *events = PyList_New(0);
    if (events == NULL) {
        return NULL;
    }
    const unsigned char *base = (const unsigned char *)PyBytes_AS_STRING(data);
    const unsigned char *p = base + start, *end = base + stop;
    LastId last_id = {NULL, 0, NULL}, last_parent = {NULL, 0, NULL};
    Copied copied[F_COPIED];
    for (Py_ssize_t number = first;; number++) {
        const unsigned char *newline = memchr(p, '\n', (size_t)(end - p));
        const unsigned char *line_end = newline != NULL ? newline : end;
        if (scan_line(p, line_end - p, copied) < 0) {
            Py_SETREF(events, Py_NewRef(Py_None));
            break;
        }
        PyObject *event = make_event(data, p - base, number, copied, kinds, versions, ids,
                                     decoded, &last_id, &last_parent);
        if (event == NULL || event == Py_None) {
            Py_SETREF(events, event);
            break;
        }
        int appended = PyList_Append(events, event);
        Py_DECREF(event);
        if (appended < 0) {
            Py_CLEAR(events);
            break;
        }
        if (newline == NULL) {
            break;
        }
        p = newline + 1;
    }
    return events;
}

/* ------------------------------------------------------------------------------------ */
/* The model (model.py's _Builder), for the usual trace: every entry with its own id,
 * parents before their children, one exit per call. Anything else: None, and the
 * Python builder, which reports what it finds, does it all. */

/* Frame's slots, as given to configure_model(): where each lives in a Frame. */
enum { S_ID, S_ENTRY, S_PARENT, S_EXIT, S_CHILDREN, S_EVENTS, S_COUNT };
static const char *const SLOT_NAMES[S_COUNT] = {
    "correlation_id", "entry", "_parent", "exit", "children", "events",
};
static Py_ssize_t g_slot[S_COUNT];
static PyTypeObject *g_frame_type;
/* Likewise Root's. */
enum { R_FRAME, R_EVENTS, R_PATH, R_COUNT };
static const char *const ROOT_SLOT_NAMES[R_COUNT] = {"frame", "events", "path"};
static Py_ssize_t g_root_slot[R_COUNT];
static PyTypeObject *g_root_type;

#define SLOT(frame, which) (*(PyObject **)((char *)(frame) + g_slot[which]))

static inline int
same_text(PyObject *text, PyObject *other)
{
    return text == other
           || (PyUnicode_GET_LENGTH(text) == PyUnicode_GET_LENGTH(other)
               && PyUnicode_Compare(text, other) == 0);
}

/* A new Frame for one entry: its slots filled as Frame.__init__ would. */
static PyObject *
new_frame(PyObject *cid, PyObject *entry)
{
    PyObject *children = PyList_New(0);
    PyObject *events = PyList_New(0);
    PyObject *frame = children && events ? g_frame_type->tp_alloc(g_frame_type, 0) : NULL;
    if (frame == NULL) {
        Py_XDECREF(children);
        Py_XDECREF(events);
        return NULL;
    }
    SLOT(frame, S_ID) = Py_NewRef(cid);
    SLOT(frame, S_ENTRY) = Py_NewRef(entry);
    SLOT(frame, S_PARENT) = Py_NewRef(Py_None);
    SLOT(frame, S_EXIT) = Py_NewRef(Py_None);
    SLOT(frame, S_CHILDREN) = children;
    SLOT(frame, S_EVENTS) = events;
    return frame;
}

/* Each linked frame's request (its list of events), by the frame's address: open
 * addressing over a table at most half full, filled once and freed with the build. No
 * Python object per frame, no string compare; frames and lists are borrowed (``frames``
 * and ``per_root`` hold them for the whole build). */
typedef struct {
    PyObject *frame;
    PyObject *tree;
} TreeSlot;

typedef struct {
    TreeSlot *slots;
    size_t mask;
    int shift;
} TreeMap;

static int
tree_map_init(TreeMap *map, Py_ssize_t frames)
{
    size_t capacity = 16;
    int bits = 4;
    while (capacity < (size_t)frames * 2) {
        capacity <<= 1;
        bits++;
    }
    map->slots = PyMem_Calloc(capacity, sizeof(TreeSlot));
    if (map->slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    map->mask = capacity - 1;
    map->shift = 64 - bits;
    return 0;
}

static inline size_t
tree_map_home(const TreeMap *map, PyObject *frame)
{
    return (size_t)(((uint64_t)(uintptr_t)frame * 0x9E3779B97F4A7C15ULL) >> map->shift);
}

static PyObject *
tree_map_get(const TreeMap *map, PyObject *frame)
{
    for (size_t i = tree_map_home(map, frame);; i = (i + 1) & map->mask) {
        TreeSlot *slot = &map->slots[i];
        if (slot->frame == frame) {
            return slot->tree;
        }
        if (slot->frame == NULL) {
            return NULL;
        }
    }
}

/* Only for a frame not in the map yet, and never more than the frames it was sized for. */
static void
tree_map_put(TreeMap *map, PyObject *frame, PyObject *tree)
{
    size_t i = tree_map_home(map, frame);
    while (map->slots[i].frame != NULL) {
        i = (i + 1) & map->mask;
    }
    map->slots[i] = (TreeSlot){frame, tree};
}

/* The last few ids placed, with their frame and request (borrowed, as in the map). Ids
 * are interned per read, so a pointer compare finds them: a call's events, and its
 * children, sit next to each other in a file, and most lookups of the huge ``frames``
 * dict (each a cache miss) end here. */
#define RECENT 4
typedef struct {
    PyObject *key[RECENT];
    PyObject *frame[RECENT];
    PyObject *tree[RECENT];
    int next;
} Recent;

static inline int
recent_get(const Recent *recent, PyObject *key, PyObject **frame, PyObject **tree)
{
    for (int i = 0; i < RECENT; i++) {
        if (recent->key[i] == key) {
            *frame = recent->frame[i];
            *tree = recent->tree[i];
            return 1;
        }
    }
    return 0;
}

static inline void
recent_put(Recent *recent, PyObject *key, PyObject *frame, PyObject *tree)
{
    recent->key[recent->next] = key;
    recent->frame[recent->next] = frame;
    recent->tree[recent->next] = tree;
    recent->next = (recent->next + 1) % RECENT;
}

/* Frames, linked; ``map`` gets each frame's request (its list of events).
 * 1: built; 0: decline. */
static int
build_frames(PyObject *events, PyObject *entry_kind, PyObject *frames, TreeMap *map,
             PyObject *roots, PyObject *per_root)
{
    Py_ssize_t count = PyList_GET_SIZE(events);
    PyObject *order = PyList_New(0); /* the frames in line order */
    if (order == NULL) {
        return -1;
    }
    /* Exactly LineEvents: their items are what the Python builder reads as attributes
     * (a plain tuple has none, a subclass may answer otherwise). */
    PyTypeObject *line_event = g_line_event;
    int done = line_event != NULL ? 1 : 0;
    for (Py_ssize_t i = 0; i < count && done > 0; i++) {
        PyObject *item = PyList_GET_ITEM(events, i);
        if (!Py_IS_TYPE(item, line_event) || PyTuple_GET_SIZE(item) != LINE_EVENT_ITEMS
            || !PyUnicode_CheckExact(PyTuple_GET_ITEM(item, 1))) {
            done = 0; /* made by hand */
            break;
        }
        if (!same_text(PyTuple_GET_ITEM(item, 1), entry_kind)) {
            continue;
        }
        PyObject *cid = PyTuple_GET_ITEM(item, 2);
        PyObject *parent_id = PyTuple_GET_ITEM(item, 3);
        if (!PyUnicode_CheckExact(cid) || PyUnicode_GET_LENGTH(cid) == 0
            || (parent_id != Py_None && !PyUnicode_CheckExact(parent_id))) {
            done = 0; /* an entry without an id, or made by hand */
            break;
        }
        PyObject *frame = new_frame(cid, item);
        if (frame == NULL) {
            done = -1;
            break;
        }
        PyObject *kept = PyDict_SetDefault(frames, cid, frame);
        if (kept == NULL || PyList_Append(order, frame) < 0) {
            done = -1;
        }
        else if (kept != frame) {
            done = 0; /* a duplicate entry */
        }
        Py_DECREF(frame);
    }
    Py_ssize_t made = PyList_GET_SIZE(order);
    if (done > 0 && tree_map_init(map, made) < 0) {
        done = -1;
    }
    /* Link each frame to its parent, whose request it joins: parents come first in the
     * file, except in a cycle or a merged log out of order (left to Python). A parent
     * already linked is in the map; one in ``frames`` but not yet linked is the frame
     * itself, a cycle, or a later line. */
    Recent recent = {{NULL}, {NULL}, {NULL}, 0};
    for (Py_ssize_t i = 0; i < made && done > 0; i++) {
        PyObject *frame = PyList_GET_ITEM(order, i);
        PyObject *cid = SLOT(frame, S_ID);
        PyObject *parent_id = PyTuple_GET_ITEM(SLOT(frame, S_ENTRY), 3);
        PyObject *parent = NULL, *tree = NULL;
        if (parent_id != Py_None && !recent_get(&recent, parent_id, &parent, &tree)) {
            parent = PyDict_GetItemWithError(frames, parent_id);
            if (parent != NULL) {
                tree = tree_map_get(map, parent);
                if (tree == NULL) {
                    done = 0; /* itself, a cycle, or a later parent */
                    break;
                }
            }
            else if (PyErr_Occurred()) {
                done = -1;
                break;
            }
        }
        if (parent == NULL) {
            tree = PyList_New(0);
            if (tree == NULL || PyList_Append(per_root, tree) < 0
                || PyList_Append(roots, frame) < 0) {
                Py_XDECREF(tree);
                done = -1;
                break;
            }
            Py_DECREF(tree); /* per_root holds it */
        }
        else {
            PyObject *link = PyWeakref_NewRef(parent, NULL);
            if (link == NULL || PyList_Append(SLOT(parent, S_CHILDREN), frame) < 0) {
                Py_XDECREF(link);
                done = -1;
                break;
            }
            Py_SETREF(SLOT(frame, S_PARENT), link);
        }
        tree_map_put(map, frame, tree);
        recent_put(&recent, cid, frame, tree);
    }
    Py_DECREF(order);
    return done;
}

/* Every event to its frame and request; orphans aside. 1: done; 0: decline.
 * *ordered: 1 when every timestamp is an integer and none is below the one before,
 * 0 when some is below, -1 when some is no integer that fits 64 bits (Python judges). */
static int
place_events(PyObject *events, PyObject *entry_kind, PyObject *exit_kind, PyObject *frames,
             const TreeMap *map, PyObject *orphans, int *ordered)
{
    Py_ssize_t count = PyList_GET_SIZE(events);
    long long previous = LLONG_MIN;
    *ordered = 1;
    PyObject *last = NULL, *frame = NULL, *tree = NULL; /* neighbours often share an id */
    Recent recent = {{NULL}, {NULL}, {NULL}, 0};
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(events, i);
        PyObject *cid = PyTuple_GET_ITEM(item, 2);
        if (*ordered > 0) {
            PyObject *stamp = PyTuple_GET_ITEM(item, 4); /* a LineEvent (build_frames) */
            int overflow = 0;
            long long value = PyLong_CheckExact(stamp)
                                  ? PyLong_AsLongLongAndOverflow(stamp, &overflow) : 0;
            if (!PyLong_CheckExact(stamp) || overflow) {
                *ordered = -1;
            }
            else if (value < previous) {
                *ordered = 0;
            }
            previous = value;
        }
        if (cid != last) {
            frame = tree = NULL;
            if (!recent_get(&recent, cid, &frame, &tree)
                && PyUnicode_CheckExact(cid)) { /* other ids place nothing */
                frame = PyDict_GetItemWithError(frames, cid);
                if (frame != NULL) {
                    tree = tree_map_get(map, frame); /* every frame was linked */
                    recent_put(&recent, cid, frame, tree);
                }
            }
            last = frame != NULL ? cid : NULL;
        }
        if (frame == NULL) {
            if (PyErr_Occurred() || PyList_Append(orphans, item) < 0) {
                return -1;
            }
            continue;
        }
        PyObject *kind = PyTuple_GET_ITEM(item, 1);
        if (same_text(kind, entry_kind)) {
            if (SLOT(frame, S_ENTRY) != item) {
                return 0;
            }
        }
        else if (same_text(kind, exit_kind)) {
            if (SLOT(frame, S_EXIT) != Py_None) {
                return 0; /* a second exit */
            }
            Py_SETREF(SLOT(frame, S_EXIT), Py_NewRef(item));
        }
        else if (PyList_Append(SLOT(frame, S_EVENTS), item) < 0) {
            return -1;
        }
        if (PyList_Append(tree, item) < 0) {
            return -1;
        }
    }
    return 1;
}

PyDoc_STRVAR(tree_doc,
"tree(events, entry_kind, exit_kind, path) -> (frames, roots, orphans, ordered) | None\n\n"
"model._Builder's frames, its Roots in line order (each with its events in line\n"
"order) and the events no frame takes, for a trace with nothing to report but\n"
"orphans; None for anything else (the Python builder then does it all).\n"
"``ordered``: whether the whole trace is in time order (None: not known here).");

/* Roots (with ``path``) for the root frames and their request's events. */
static PyObject *
make_roots(PyObject *frames, PyObject *per_root, PyObject *path)
{
    Py_ssize_t count = PyList_GET_SIZE(frames);
    PyObject *roots = PyList_New(count);
    for (Py_ssize_t i = 0; roots != NULL && i < count; i++) {
        PyObject *root = g_root_type->tp_alloc(g_root_type, 0);
        if (root == NULL) {
            Py_CLEAR(roots);
            break;
        }
        *(PyObject **)((char *)root + g_root_slot[R_FRAME]) =
            Py_NewRef(PyList_GET_ITEM(frames, i));
        *(PyObject **)((char *)root + g_root_slot[R_EVENTS]) =
            Py_NewRef(PyList_GET_ITEM(per_root, i));
        *(PyObject **)((char *)root + g_root_slot[R_PATH]) = Py_NewRef(path);
        PyList_SET_ITEM(roots, i, root);
    }
    return roots;
}

static PyObject *
bulk_tree(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4 || !PyList_CheckExact(args[0]) || !PyUnicode_CheckExact(args[1])
        || !PyUnicode_CheckExact(args[2])) {
        PyErr_SetString(PyExc_TypeError, "tree(list, str, str, path)");
        return NULL;
    }
    if (g_frame_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure_model() was not called");
        return NULL;
    }
    /* Sized for every entry at once: growing a dict of a hundred thousand ids rehashes it
     * again and again, each time through memory no cache holds. */
    Py_ssize_t entries = 0, count = PyList_GET_SIZE(args[0]);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(args[0], i);
        entries += Py_IS_TYPE(item, g_line_event) && PyTuple_GET_SIZE(item) == LINE_EVENT_ITEMS
                   && PyTuple_GET_ITEM(item, 1) == args[1];
    }
    PyObject *frames = _PyDict_NewPresized(entries);
    PyObject *roots = PyList_New(0), *per_root = PyList_New(0), *orphans = PyList_New(0);
    PyObject *result = NULL;
    TreeMap map = {NULL, 0, 0};
    if (frames && roots && per_root && orphans) {
        int ordered = 0;
        int done = build_frames(args[0], args[1], frames, &map, roots, per_root);
        if (done > 0) {
            done = place_events(args[0], args[1], args[2], frames, &map, orphans, &ordered);
        }
        if (done > 0) {
            Py_SETREF(roots, make_roots(roots, per_root, args[3]));
        }
        if (done > 0 && roots != NULL) {
            result = Py_BuildValue("(OOOO)", frames, roots, orphans,
                                   ordered < 0 ? Py_None : ordered ? Py_True : Py_False);
        }
        else if (done == 0) {
            result = Py_NewRef(Py_None);
        }
    }
    Py_XDECREF(frames);
    PyMem_Free(map.slots);
    Py_XDECREF(roots);
    Py_XDECREF(per_root);
    Py_XDECREF(orphans);
    return result;
}

PyDoc_STRVAR(configure_model_doc,
"configure_model(frame_type, root_type) -> None\n\n"
"Hand over, once, the Frame and Root classes tree() makes (slots found by name).");

/* The offsets of ``type``'s plain object slots ``names``; -1 (error set) if it has none. */
static int
slot_offsets(PyTypeObject *type, const char *const *names, int count, Py_ssize_t *offsets)
{
    if (type->tp_dictoffset != 0) {
        PyErr_Format(PyExc_TypeError, "%s must have __slots__", type->tp_name);
        return -1;
    }
    for (int i = 0; i < count; i++) {
        PyObject *descriptor = PyDict_GetItemString(type->tp_dict, names[i]);
        if (descriptor == NULL || !Py_IS_TYPE(descriptor, &PyMemberDescr_Type)) {
            PyErr_Format(PyExc_TypeError, "%s has no slot %s", type->tp_name, names[i]);
            return -1;
        }
        PyMemberDef *member = ((PyMemberDescrObject *)descriptor)->d_member;
        if (member->type != T_OBJECT_EX || (member->flags & READONLY)) {
            PyErr_Format(PyExc_TypeError, "%s.%s is no plain slot", type->tp_name, names[i]);
            return -1;
        }
        offsets[i] = member->offset;
    }
    return 0;
}

static PyObject *
bulk_configure_model(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2 || !PyType_Check(args[0]) || !PyType_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "configure_model(type, type)");
        return NULL;
    }
    PyTypeObject *frame_type = (PyTypeObject *)args[0], *root_type = (PyTypeObject *)args[1];
    if (frame_type->tp_weaklistoffset == 0) {
        PyErr_SetString(PyExc_TypeError, "Frame must have a __weakref__ slot");
        return NULL;
    }
    Py_ssize_t slots[S_COUNT], root_slots[R_COUNT];
    if (slot_offsets(frame_type, SLOT_NAMES, S_COUNT, slots) < 0
        || slot_offsets(root_type, ROOT_SLOT_NAMES, R_COUNT, root_slots) < 0) {
        return NULL;
    }
    memcpy(g_slot, slots, sizeof(slots));
    memcpy(g_root_slot, root_slots, sizeof(root_slots));
    Py_XSETREF(g_frame_type, (PyTypeObject *)Py_NewRef(args[0]));
    Py_XSETREF(g_root_type, (PyTypeObject *)Py_NewRef(args[1]));
    Py_RETURN_NONE;
}

/* A field's mask of allowed value types; -1 (error set) unless it is one. */
static int
mask_of(PyObject *mask)
{
    long value = PyLong_AsLong(mask);
    if (value == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (value <= 0 || value > (J_STR | J_INT | J_FLOAT | J_BOOL | J_NULL | J_OBJ | J_ARR)) {
        PyErr_SetString(PyExc_ValueError, "a field's mask must name some JSON types");
        return -1;
    }
    return (int)value;
}

PyDoc_STRVAR(configure_doc,
"configure(fields, kinds, line_event) -> None\n\n"
"Hand over, once, the checked fields (name -> mask of allowed types), the known\n"
"event types and the LineEvent class the events are made of.");

static PyObject *
bulk_configure(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3 || !PyDict_Check(args[0]) || !PyTuple_Check(args[1])
        || !PyType_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "configure(dict, tuple, type)");
        return NULL;
    }
    PyTypeObject *line_event = (PyTypeObject *)args[2];
    if (!PyType_IsSubtype(line_event, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "line_event must be a tuple subclass");
        return NULL;
    }
    Py_ssize_t kinds_count = PyTuple_GET_SIZE(args[1]);
    for (Py_ssize_t i = 0; i < kinds_count; i++) {
        PyObject *kind = PyTuple_GET_ITEM(args[1], i);
        if (!PyUnicode_CheckExact(kind) || !PyUnicode_IS_ASCII(kind)) {
            PyErr_SetString(PyExc_TypeError, "event types must be ASCII strings");
            return NULL;
        }
    }
    /* Every name an exact str and every mask an exact int, checked before anything else:
     * then neither the walk over the dict nor a lookup in it can run Python code. */
    PyObject *name, *mask;
    Py_ssize_t position = 0;
    while (PyDict_Next(args[0], &position, &name, &mask)) {
        if (!PyUnicode_CheckExact(name) || !PyLong_CheckExact(mask)) {
            PyErr_SetString(PyExc_TypeError, "fields must map str to int");
            return NULL;
        }
    }
    Field fields[MAX_FIELDS];
    int count = 0;
    /* The copied fields first, at their fixed indexes; then every other checked one. */
    for (int i = 0; i < F_COPIED; i++) {
        PyObject *found = PyDict_GetItemString(args[0], COPIED_NAMES[i]);
        if (found == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_Format(PyExc_ValueError, "no type for %s", COPIED_NAMES[i]);
            }
            return NULL;
        }
        strcpy(fields[count].name, COPIED_NAMES[i]);
        fields[count].length = (Py_ssize_t)strlen(COPIED_NAMES[i]);
        if ((fields[count].allowed = mask_of(found)) < 0) {
            return NULL;
        }
        count++;
    }
    position = 0;
    while (PyDict_Next(args[0], &position, &name, &mask)) {
        Py_ssize_t length;
        const char *text = PyUnicode_AsUTF8AndSize(name, &length);
        if (text == NULL) {
            return NULL;
        }
        if (length <= 0 || length >= (Py_ssize_t)sizeof(fields[0].name)
            || (Py_ssize_t)strlen(text) != length) {
            PyErr_SetString(PyExc_ValueError, "field names must be short strings");
            return NULL;
        }
        int copied_already = 0;
        for (int i = 0; i < F_COPIED; i++) {
            copied_already |= strcmp(text, COPIED_NAMES[i]) == 0;
        }
        if (copied_already) {
            continue;
        }
        if (count == MAX_FIELDS) {
            PyErr_SetString(PyExc_ValueError, "too many checked fields");
            return NULL;
        }
        memcpy(fields[count].name, text, (size_t)length + 1);
        fields[count].length = length;
        if ((fields[count].allowed = mask_of(mask)) < 0) {
            return NULL;
        }
        count++;
    }
    memcpy(g_fields, fields, sizeof(fields));
    g_field_count = count;
    int at = 0;
    for (Py_ssize_t length = 0; length < MAX_NAME; length++) {
        g_first[length] = at;
        for (int i = 0; i < count; i++) {
            if (fields[i].length == length) {
                g_by_length[at++] = (signed char)i;
            }
        }
    }
    g_first[MAX_NAME] = at;
    Py_XSETREF(g_kinds, Py_NewRef(args[1]));
    Py_XSETREF(g_line_event, (PyTypeObject *)Py_NewRef(args[2]));
    g_configured = 1;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(presized_doc,
"presized(n) -> dict\n\n"
"An empty dict with room for about n keys: the read's interned ids, which would\n"
"otherwise be rehashed again and again as a large trace fills them in.");

static PyObject *
bulk_presized(PyObject *module, PyObject *count)
{
    (void)module;
    Py_ssize_t n = PyLong_AsSsize_t(count);
    if (n == -1 && PyErr_Occurred()) {
        return NULL;
    }
    return _PyDict_NewPresized(n < 0 ? 0 : n);
}

static PyMethodDef bulk_methods[] = {
    {"presized", (PyCFunction)bulk_presized, METH_O, presized_doc},
    {"region", (PyCFunction)(void (*)(void))bulk_region, METH_FASTCALL, region_doc},
    {"tree", (PyCFunction)(void (*)(void))bulk_tree, METH_FASTCALL, tree_doc},
    {"configure_model", (PyCFunction)(void (*)(void))bulk_configure_model, METH_FASTCALL,
     configure_model_doc},
    {"configure", (PyCFunction)(void (*)(void))bulk_configure, METH_FASTCALL, configure_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef bulk_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pytest_replay.format._bulk",
    .m_doc = "The reader's bulk path and the model builder in C (bulk.py and model.py are "
             "the reference).",
    .m_size = -1,
    .m_methods = bulk_methods,
};

PyMODINIT_FUNC
PyInit__bulk(void)
{
    for (int ch = 0; ch < 256; ch++) {
        g_plain[ch] = ch >= 0x20 && ch < 0x80 && ch != '"' && ch != '\\';
    }
    PyObject *module = PyModule_Create(&bulk_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddIntConstant(module, "INTERFACE", INTERFACE) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
