/*
 * keras.json and KERAS_BACKEND, as keras/backend/load_backend.py (2.3.1) reads them, except that
 * invalid JSON or an invalid value is a KB_ERR_CONFIG naming the file, key and value instead of a
 * silent default (invalid JSON) or a bare AssertionError (invalid value).
 */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/context.h"
#include "core/error.h"

void kb_config_defaults(kb_config *cfg) {
    cfg->epsilon = 1e-7;
    cfg->floatx = KB_FLOAT32;
    cfg->image_data_format = KB_CHANNELS_LAST;
    snprintf(cfg->backend, sizeof cfg->backend, "%s", "tensorflow");
}

static void config_dir(const char *keras_home, char *out, size_t n) {
    if (keras_home && *keras_home) {
        snprintf(out, n, "%s", keras_home);
        return;
    }
    const char *env = getenv("KERAS_HOME");
    if (env && *env) {
        snprintf(out, n, "%s", env);
        return;
    }
    const char *home = getenv("HOME");
    if (home && *home && access(home, W_OK) == 0)
        snprintf(out, n, "%s/.keras", home);
    else
        snprintf(out, n, "%s", "/tmp/.keras");
}

/* cJSON keeps no integer/float distinction; Keras asserts isinstance(epsilon, float), so look at
 * the literal: a float literal has '.', 'e' or 'E'. */
static int epsilon_literal_is_float(const char *text) {
    const char *p = strstr(text, "\"epsilon\"");
    if (!p) return 1;
    p += 9;
    while (*p && isspace((unsigned char)*p)) p++;
    if (*p != ':') return 1;
    p++;
    while (*p && isspace((unsigned char)*p)) p++;
    for (; *p && (isdigit((unsigned char)*p) || strchr("+-.eE", *p)); ++p)
        if (*p == '.' || *p == 'e' || *p == 'E') return 1;
    return 0;
}

static kb_status parse_config(kb_config *cfg, const char *path, const char *text) {
    cJSON *root = cJSON_Parse(text);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        char near[32] = "";
        if (at) snprintf(near, sizeof near, "%.20s", at);
        return kb_set_error(KB_ERR_CONFIG, "keras.json: %s is not valid JSON (near '%s')", path, near);
    }
    kb_status st = KB_OK;
    if (!cJSON_IsObject(root)) {
        st = kb_set_error(KB_ERR_CONFIG, "keras.json: %s must hold a JSON object", path);
        goto done;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "floatx");
    if (v) {
        const char *s = cJSON_IsString(v) ? v->valuestring : NULL;
        if (s && strcmp(s, "float16") == 0) cfg->floatx = KB_FLOAT16;
        else if (s && strcmp(s, "float32") == 0) cfg->floatx = KB_FLOAT32;
        else if (s && strcmp(s, "float64") == 0) cfg->floatx = KB_FLOAT64;
        else {
            char *p = cJSON_PrintUnformatted(v);
            st = kb_set_error(KB_ERR_CONFIG,
                              "keras.json: %s: invalid floatx %s (expected \"float16\", \"float32\" or \"float64\")",
                              path, p ? p : "?");
            cJSON_free(p);
            goto done;
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "epsilon");
    if (v) {
        if (!cJSON_IsNumber(v) || !epsilon_literal_is_float(text) || !isfinite(v->valuedouble)) {
            char *p = cJSON_PrintUnformatted(v);
            st = kb_set_error(KB_ERR_CONFIG, "keras.json: %s: invalid epsilon %s (expected a float such as 1e-07)",
                              path, p ? p : "?");
            cJSON_free(p);
            goto done;
        }
        cfg->epsilon = v->valuedouble;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "backend");
    if (v) {
        if (!cJSON_IsString(v)) {
            st = kb_set_error(KB_ERR_CONFIG, "keras.json: %s: backend must be a string", path);
            goto done;
        }
        snprintf(cfg->backend, sizeof cfg->backend, "%s", v->valuestring);
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "image_data_format");
    if (v) {
        const char *s = cJSON_IsString(v) ? v->valuestring : NULL;
        if (s && strcmp(s, "channels_last") == 0) cfg->image_data_format = KB_CHANNELS_LAST;
        else if (s && strcmp(s, "channels_first") == 0) cfg->image_data_format = KB_CHANNELS_FIRST;
        else {
            char *p = cJSON_PrintUnformatted(v);
            st = kb_set_error(KB_ERR_CONFIG,
                              "keras.json: %s: invalid image_data_format %s (expected \"channels_last\" or \"channels_first\")",
                              path, p ? p : "?");
            cJSON_free(p);
            goto done;
        }
    }
done:
    cJSON_Delete(root);
    return st;
}

/* Keras writes the defaults when the file is missing; write errors are ignored, as in Keras. */
static void write_defaults(const kb_config *cfg, const char *path) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return;
    cJSON_AddStringToObject(root, "floatx", kb_dtype_name(cfg->floatx));
    cJSON_AddNumberToObject(root, "epsilon", cfg->epsilon);
    cJSON_AddStringToObject(root, "backend", cfg->backend);
    cJSON_AddStringToObject(root, "image_data_format",
                            cfg->image_data_format == KB_CHANNELS_LAST ? "channels_last" : "channels_first");
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return;
    /* write a private temporary and rename it: a process starting at the same moment reads either
     * no file or a whole one, never half of it */
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (f) {
        int ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF;
        ok = fclose(f) == 0 && ok;
        if (!ok || rename(tmp, path) != 0) remove(tmp);
    }
    cJSON_free(text);
}

kb_status kb_config_load(kb_config *cfg, const char *keras_home, int read_file) {
    kb_config_defaults(cfg);
    if (read_file) {
        char dir[4096], path[4200];
        config_dir(keras_home, dir, sizeof dir);
        snprintf(path, sizeof path, "%s/keras.json", dir);
        FILE *f = fopen(path, "rb");
        if (!f && access(path, F_OK) == 0)
            return kb_set_error(KB_ERR_IO, "keras.json: %s exists but cannot be read: %s", path, strerror(errno));
        if (f) {
            fseek(f, 0, SEEK_END);
            long len = ftell(f);
            fseek(f, 0, SEEK_SET);
            char *text = len >= 0 ? (char *)malloc((size_t)len + 1) : NULL;
            if (!text) {
                fclose(f);
                return kb_set_error(KB_ERR_IO, "keras.json: cannot read %s", path);
            }
            size_t got = fread(text, 1, (size_t)len, f);
            fclose(f);
            text[got] = '\0';
            kb_status st = parse_config(cfg, path, text);
            free(text);
            if (st != KB_OK) return st;
        } else {
            /* os.makedirs; failures are ignored as in Keras: the session runs on defaults */
            for (char *p = dir + 1; *p; ++p)
                if (*p == '/') {
                    *p = '\0';
                    (void)mkdir(dir, 0777);
                    *p = '/';
                }
            (void)mkdir(dir, 0777);
            write_defaults(cfg, path);
        }
    }
    const char *env = getenv("KERAS_BACKEND");
    if (env && *env) snprintf(cfg->backend, sizeof cfg->backend, "%s", env);
    return KB_OK;
}
