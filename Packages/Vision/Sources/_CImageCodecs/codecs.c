// PNG and JPEG codecs over libpng and libjpeg-turbo. Both libraries report errors by longjmp; each
// entry point sets its jump buffer and turns a jump into a message and a non-zero return.

#include "image_codecs.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

static void set_error(char error[256], const char *message) {
    snprintf(error, 256, "%s", message);
}

void sl_free(void *p) { free(p); }

void sl_image_free(sl_image *image) {
    if (image && image->pixels) {
        free(image->pixels);
        image->pixels = NULL;
    }
}

// ---------------------------------------------------------------------------------------------------
// EXIF

static unsigned read16(const uint8_t *p, int big) { return big ? (unsigned)(p[0] << 8 | p[1]) : (unsigned)(p[1] << 8 | p[0]); }

static uint32_t read32(const uint8_t *p, int big) {
    return big ? ((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3])
               : ((uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0]);
}

int sl_exif_orientation(const uint8_t *tiff, size_t size) {
    if (!tiff || size < 8) return 1;
    int big;
    if (tiff[0] == 'M' && tiff[1] == 'M') big = 1;
    else if (tiff[0] == 'I' && tiff[1] == 'I') big = 0;
    else return 1;
    if (read16(tiff + 2, big) != 42) return 1;
    uint32_t ifd = read32(tiff + 4, big);
    if (ifd > size - 2) return 1;
    unsigned count = read16(tiff + ifd, big);
    for (unsigned i = 0; i < count; i++) {
        size_t entry = (size_t)ifd + 2 + (size_t)i * 12;
        if (entry + 12 > size) return 1;
        if (read16(tiff + entry, big) == 0x0112) {
            unsigned type = read16(tiff + entry + 2, big);
            unsigned value = type == 3 ? read16(tiff + entry + 8, big) : 1;
            return value >= 1 && value <= 8 ? (int)value : 1;
        }
    }
    return 1;
}

// ---------------------------------------------------------------------------------------------------
// JPEG

typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
} jpeg_errors;

static void jpeg_fail(j_common_ptr cinfo) {
    jpeg_errors *e = (jpeg_errors *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->message);
    longjmp(e->jump, 1);
}

static void jpeg_message(j_common_ptr cinfo, int level) {
    // level -1: a warning (corrupt or truncated data): treated as an error.
    if (level < 0) jpeg_fail(cinfo);
}

int sl_decode_jpeg(const uint8_t *data, size_t size, int64_t max_pixels, sl_image *out) {
    memset(out, 0, sizeof(*out));
    out->orientation = 1;
    struct jpeg_decompress_struct cinfo;
    jpeg_errors err;
    uint8_t *volatile pixels = NULL;
    uint8_t *volatile row = NULL;
    cinfo.err = jpeg_std_error(&err.base);
    err.base.error_exit = jpeg_fail;
    err.base.emit_message = jpeg_message;
    if (setjmp(err.jump)) {
        snprintf(out->error, sizeof(out->error), "invalid JPEG data: %s", err.message);
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        free(row);
        return 1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(&cinfo, TRUE);
    for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next) {
        if (m->marker == JPEG_APP0 + 1 && m->data_length > 6 && memcmp(m->data, "Exif\0\0", 6) == 0) {
            out->orientation = sl_exif_orientation(m->data + 6, m->data_length - 6);
            break;
        }
    }
    int64_t w = cinfo.image_width, h = cinfo.image_height;
    if (w <= 0 || h <= 0) {
        snprintf(out->error, sizeof(out->error), "the image has no pixels (%lld x %lld)", (long long)w, (long long)h);
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    if (max_pixels > 0 && w * h > max_pixels) {
        snprintf(out->error, sizeof(out->error), "the image is %lld x %lld = %lld pixels, over the limit of %lld",
                 (long long)w, (long long)h, (long long)(w * h), (long long)max_pixels);
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    int cmyk = cinfo.num_components == 4;
    int inverted = cmyk && cinfo.saw_Adobe_marker;
    cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    size_t stride = (size_t)cinfo.output_width * (size_t)cinfo.output_components;
    pixels = malloc((size_t)cinfo.output_width * cinfo.output_height * 3);
    row = malloc(stride);
    if (!pixels || !row) {
        set_error(err.message, "out of memory");
        longjmp(err.jump, 1);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        size_t y = cinfo.output_scanline;
        JSAMPROW rows[1] = {row};
        jpeg_read_scanlines(&cinfo, rows, 1);
        uint8_t *dst = pixels + y * cinfo.output_width * 3;
        if (!cmyk) {
            memcpy(dst, row, stride);
            continue;
        }
        for (size_t x = 0; x < cinfo.output_width; x++) {
            // Ink amounts; Adobe files store them inverted. RGB as PIL converts CMYK:
            // v = (255 - k) - round(c * (255 - k) / 255).
            int c[4];
            for (int i = 0; i < 4; i++) c[i] = inverted ? 255 - row[x * 4 + i] : row[x * 4 + i];
            int nk = 255 - c[3];
            for (int i = 0; i < 3; i++) {
                int t = c[i] * nk + 128;
                int v = nk - (((t >> 8) + t) >> 8);
                dst[x * 3 + i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(row);
    out->width = (int)w;
    out->height = (int)h;
    out->channels = 3;
    out->pixels = pixels;
    return 0;
}

int sl_encode_jpeg(const uint8_t *pixels, int width, int height, int channels, int quality, uint8_t **out,
                   size_t *out_size, char error[256]) {
    *out = NULL;
    *out_size = 0;
    if (channels != 1 && channels != 3) {
        set_error(error, "JPEG encoding needs 1 (gray) or 3 (RGB) channels");
        return 1;
    }
    if (width <= 0 || height <= 0) {
        set_error(error, "cannot encode an empty image");
        return 1;
    }
    struct jpeg_compress_struct cinfo;
    jpeg_errors err;
    unsigned char *volatile buffer = NULL;
    unsigned long length = 0;
    cinfo.err = jpeg_std_error(&err.base);
    err.base.error_exit = jpeg_fail;
    if (setjmp(err.jump)) {
        snprintf(error, 256, "JPEG encoding failed: %s", err.message);
        jpeg_destroy_compress(&cinfo);
        free(buffer);
        return 1;
    }
    jpeg_create_compress(&cinfo);
    unsigned char *b = NULL;
    jpeg_mem_dest(&cinfo, &b, &length);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = channels;
    cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality < 1 ? 1 : quality > 100 ? 100 : quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW rows[1] = {(JSAMPROW)(pixels + (size_t)cinfo.next_scanline * width * channels)};
        jpeg_write_scanlines(&cinfo, rows, 1);
    }
    jpeg_finish_compress(&cinfo);
    buffer = b;
    jpeg_destroy_compress(&cinfo);
    *out = buffer;
    *out_size = length;
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// PNG

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t offset;
} png_reader;

typedef struct {
    jmp_buf jump;
    char message[200];
} png_errors;

static void png_fail(png_structp png, png_const_charp message) {
    png_errors *e = (png_errors *)png_get_error_ptr(png);
    snprintf(e->message, sizeof(e->message), "%s", message);
    longjmp(e->jump, 1);
}

static void png_warn(png_structp png, png_const_charp message) {
    (void)png;
    (void)message;
}

static void png_read_memory(png_structp png, png_bytep out, png_size_t count) {
    png_reader *r = (png_reader *)png_get_io_ptr(png);
    if (count > r->size - r->offset) png_error(png, "the file is truncated");
    memcpy(out, r->data + r->offset, count);
    r->offset += count;
}

int sl_decode_png(const uint8_t *data, size_t size, int64_t max_pixels, size_t max_chunk, sl_image *out) {
    memset(out, 0, sizeof(*out));
    out->orientation = 1;
    if (size < 8 || png_sig_cmp(data, 0, 8) != 0) {
        set_error(out->error, "not a PNG file (bad signature)");
        return 1;
    }
    png_errors err;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, png_fail, png_warn);
    if (!png) {
        set_error(out->error, "cannot create the PNG reader");
        return 1;
    }
    png_infop info = png_create_info_struct(png);
    png_infop end = png_create_info_struct(png);
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    png_reader reader = {data, size, 0};
    if (setjmp(err.jump)) {
        snprintf(out->error, sizeof(out->error), "invalid PNG data: %s", err.message);
        png_destroy_read_struct(&png, &info, &end);
        free(pixels);
        free(rows);
        return 1;
    }
    png_set_read_fn(png, &reader, png_read_memory);
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    // A chunk length is only a claim: bound the buffer libpng takes for it (and for what it inflates to).
    png_set_chunk_malloc_max(png, max_chunk);
    png_set_chunk_cache_max(png, 1000);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if (max_pixels > 0 && (int64_t)w * (int64_t)h > max_pixels) {
        snprintf(out->error, sizeof(out->error), "the image is %u x %u = %lld pixels, over the limit of %lld", w, h,
                 (long long)w * (long long)h, (long long)max_pixels);
        png_destroy_read_struct(&png, &info, &end);
        return 1;
    }
    int color = png_get_color_type(png, info);
    int depth = png_get_bit_depth(png, info);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (depth == 16) png_set_scale_16(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int channels = png_get_channels(png, info);
    size_t stride = png_get_rowbytes(png, info);
    if (stride != (size_t)w * channels) png_error(png, "unexpected row layout after conversion");
    pixels = malloc(stride * h);
    rows = malloc(sizeof(png_bytep) * h);
    if (!pixels || !rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) rows[y] = pixels + y * stride;
    png_read_image(png, rows);
    png_read_end(png, end);
#ifdef PNG_eXIf_SUPPORTED
    png_bytep exif = NULL;
    png_uint_32 exif_size = 0;
    if (png_get_eXIf_1(png, info, &exif_size, &exif) != 0 || png_get_eXIf_1(png, end, &exif_size, &exif) != 0) {
        out->orientation = sl_exif_orientation(exif, exif_size);
    }
#endif
    png_destroy_read_struct(&png, &info, &end);
    free(rows);
    out->width = (int)w;
    out->height = (int)h;
    out->channels = channels;
    out->pixels = pixels;
    return 0;
}

typedef struct {
    uint8_t *data;
    size_t size;
    size_t capacity;
} png_writer;

static void png_write_memory(png_structp png, png_bytep in, png_size_t count) {
    png_writer *w = (png_writer *)png_get_io_ptr(png);
    if (w->size + count > w->capacity) {
        size_t cap = w->capacity ? w->capacity * 2 : 4096;
        while (cap < w->size + count) cap *= 2;
        uint8_t *grown = realloc(w->data, cap);
        if (!grown) png_error(png, "out of memory");
        w->data = grown;
        w->capacity = cap;
    }
    memcpy(w->data + w->size, in, count);
    w->size += count;
}

static void png_flush_memory(png_structp png) { (void)png; }

int sl_encode_png(const uint8_t *pixels, int width, int height, int channels, uint8_t **out, size_t *out_size,
                  char error[256]) {
    *out = NULL;
    *out_size = 0;
    static const int types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                 PNG_COLOR_TYPE_RGB_ALPHA};
    if (channels < 1 || channels > 4) {
        set_error(error, "PNG encoding needs 1 to 4 channels");
        return 1;
    }
    if (width <= 0 || height <= 0) {
        set_error(error, "cannot encode an empty image");
        return 1;
    }
    png_errors err;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, png_fail, png_warn);
    if (!png) {
        set_error(error, "cannot create the PNG writer");
        return 1;
    }
    png_infop info = png_create_info_struct(png);
    png_writer writer = {NULL, 0, 0};
    png_writer *volatile wp = &writer;
    if (setjmp(err.jump)) {
        snprintf(error, 256, "PNG encoding failed: %s", err.message);
        png_destroy_write_struct(&png, &info);
        free(wp->data);
        return 1;
    }
    png_set_write_fn(png, &writer, png_write_memory, png_flush_memory);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, types[channels], PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < height; y++) png_write_row(png, (png_const_bytep)(pixels + (size_t)y * width * channels));
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    *out = writer.data;
    *out_size = writer.size;
    return 0;
}
