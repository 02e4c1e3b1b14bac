// PNG and JPEG decoding/encoding to and from interleaved 8-bit pixels, with the libraries' errors
// (setjmp/longjmp based) turned into return codes and messages. Used by the ImagePipeline target.
#ifndef SIGHTLINE_IMAGE_CODECS_H
#define SIGHTLINE_IMAGE_CODECS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// A decoded image: `channels` (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) interleaved 8-bit samples, row-major.
typedef struct {
    int width;
    int height;
    int channels;
    /// EXIF orientation (1...8), 1 when the file has none.
    int orientation;
    /// malloc'd; release with sl_image_free.
    uint8_t *pixels;
    /// Why decoding failed (empty on success).
    char error[256];
} sl_image;

/// Decodes a JPEG (grayscale, YCbCr/RGB, CMYK/YCCK including Adobe-inverted CMYK, converted to RGB).
/// Any libjpeg warning (truncated or corrupt data) is an error. Returns 0 on success.
int sl_decode_jpeg(const uint8_t *data, size_t size, int64_t max_pixels, sl_image *out);

/// Decodes a PNG (any bit depth, palette with or without transparency, gray, gray+alpha, RGB, RGBA);
/// 16-bit samples are scaled to 8 bits by round(v * 255 / 65535), palettes expanded, tRNS made alpha.
/// Returns 0 on success.
// max_chunk bounds what libpng allocates for one ancillary chunk (its stored or decompressed size).
int sl_decode_png(const uint8_t *data, size_t size, int64_t max_pixels, size_t max_chunk, sl_image *out);

/// Encodes 8-bit pixels (1, 2, 3 or 4 channels) as PNG into a malloc'd buffer. Returns 0 on success.
int sl_encode_png(const uint8_t *pixels, int width, int height, int channels, uint8_t **out, size_t *out_size,
                  char error[256]);

/// Encodes 8-bit gray (1 channel) or RGB (3 channels) pixels as a baseline JPEG of `quality` (1...100).
int sl_encode_jpeg(const uint8_t *pixels, int width, int height, int channels, int quality, uint8_t **out,
                   size_t *out_size, char error[256]);

/// The EXIF orientation (1...8) in a TIFF-structured EXIF block (starting at "II" or "MM"), or 1.
int sl_exif_orientation(const uint8_t *tiff, size_t size);

void sl_image_free(sl_image *image);
void sl_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
