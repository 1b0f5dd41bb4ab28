/* Decode only a region of a JPEG with libjpeg(-turbo): the columns a crop needs
 * (jpeg_crop_scanline skips the inverse DCT and colour conversion of the others), the rows
 * above it skipped (jpeg_skip_scanlines), the rows below it never decoded. Built at set-up
 * into datasets/_jpeg_region.so and called through ctypes (datasets/jpeg_region.py).
 *
 * Errors never end the process: libjpeg's error exit jumps back here and the function returns
 * -1 with the message. Warnings (corrupt data that libjpeg would decode anyway) are errors
 * too, as simplejpeg's strict mode treats them.
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>

#define MESSAGE_SIZE 200

struct error_manager {
  struct jpeg_error_mgr pub;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

static void on_error(j_common_ptr cinfo) {
  struct error_manager *err = (struct error_manager *)cinfo->err;
  (*cinfo->err->format_message)(cinfo, err->message);
  longjmp(err->jump, 1);
}

static void on_message(j_common_ptr cinfo, int level) {
  if (level < 0)            /* a warning: damaged data */
    on_error(cinfo);
}

/* A decompressor whose errors jump back to the caller's setjmp instead of ending the process. */
static void create(struct jpeg_decompress_struct *cinfo, struct error_manager *err) {
  cinfo->err = jpeg_std_error(&err->pub);
  err->pub.error_exit = on_error;
  err->pub.emit_message = on_message;
  jpeg_create_decompress(cinfo);
}

/* The header read, and the output asked for: RGB (components 3) or grey, at scale num/8. */
static void read_header(struct jpeg_decompress_struct *cinfo, const unsigned char *data,
                        unsigned long size, int num, int components) {
  jpeg_mem_src(cinfo, data, size);
  jpeg_read_header(cinfo, TRUE);
  cinfo->out_color_space = components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  cinfo->scale_num = num;
  cinfo->scale_denom = 8;
}

/* The size of the image decoded at scale num/8 (libjpeg's own rounding). 0, or -1 and a
 * message. */
int dlac_jpeg_scaled_size(const unsigned char *data, unsigned long size, int num,
                          int *width, int *height, char *message) {
  struct jpeg_decompress_struct cinfo;
  struct error_manager err;
  create(&cinfo, &err);
  if (setjmp(err.jump)) {
    snprintf(message, MESSAGE_SIZE, "%s", err.message);
    jpeg_destroy_decompress(&cinfo);
    return -1;
  }
  read_header(&cinfo, data, size, num, 3);
  jpeg_calc_output_dimensions(&cinfo);
  *width = (int)cinfo.output_width;
  *height = (int)cinfo.output_height;
  jpeg_destroy_decompress(&cinfo);
  return 0;
}

/* Rows y..y+h-1 and columns x..x+w-1 of the image decoded at scale num/8, as RGB
 * (components 3) or grey (1), into out: h rows `row_stride` bytes apart, pixels
 * `pixel_stride` bytes apart (a grey plane may be one channel of a larger array). The image
 * must decode to width x height
 * (the clip's first frame's size). A margin of `margin` pixels around the region is decoded
 * too and dropped, so that chroma upsampling at the region's edges sees the neighbours a full
 * decode sees: the pixels equal a full decode's. 0, or -1 and a message. */
int dlac_jpeg_decode_region(const unsigned char *data, unsigned long size, int num,
                            int width, int height, int x, int y, int w, int h, int margin,
                            int components, unsigned char *out, long row_stride,
                            long pixel_stride, char *message) {
  struct jpeg_decompress_struct cinfo;
  struct error_manager err;
  JSAMPARRAY volatile rows = NULL;
  unsigned char *volatile block = NULL;
  create(&cinfo, &err);
  if (setjmp(err.jump)) {
    snprintf(message, MESSAGE_SIZE, "%s", err.message);
    jpeg_destroy_decompress(&cinfo);
    free(rows);
    free(block);
    return -1;
  }
  read_header(&cinfo, data, size, num, components);
  cinfo.dct_method = JDCT_ISLOW;
  cinfo.do_fancy_upsampling = TRUE;
  jpeg_start_decompress(&cinfo);
  if ((int)cinfo.output_width != width || (int)cinfo.output_height != height ||
      cinfo.output_components != components) {
    snprintf(message, MESSAGE_SIZE, "size %dx%d differs from the earlier frames (%dx%d)",
             (int)cinfo.output_width, (int)cinfo.output_height, width, height);
    jpeg_destroy_decompress(&cinfo);
    return -1;
  }
  if (x < 0 || y < 0 || w < 1 || h < 1 || x + w > width || y + h > height) {
    snprintf(message, MESSAGE_SIZE, "region %dx%d at (%d, %d) is outside the %dx%d image",
             w, h, x, y, width, height);
    jpeg_destroy_decompress(&cinfo);
    return -1;
  }
  int left = x - margin < 0 ? 0 : x - margin;
  int right = x + w + margin > width ? width : x + w + margin;
  int top = y - margin < 0 ? 0 : y - margin;
  JDIMENSION crop_x = (JDIMENSION)left, crop_w = (JDIMENSION)(right - left);
  if (crop_x > 0 || crop_w < cinfo.output_width)
    jpeg_crop_scanline(&cinfo, &crop_x, &crop_w);   /* widened to whole iMCU columns */
  /* the rows from `top` to the region's last, decoded many at a time (one row per call
     costs the upsampler's set-up on every call), then the region copied out */
  int lines = y + h - top;
  size_t width_bytes = (size_t)crop_w * (size_t)components;
  rows = (JSAMPARRAY)malloc(sizeof(JSAMPROW) * (size_t)lines);
  block = (unsigned char *)malloc(width_bytes * (size_t)lines);
  if (rows == NULL || block == NULL) {
    snprintf(message, MESSAGE_SIZE, "out of memory");
    jpeg_destroy_decompress(&cinfo);
    free(rows);
    free(block);
    return -1;
  }
  for (int line = 0; line < lines; line++)
    rows[line] = block + width_bytes * (size_t)line;
  if (top > 0)
    jpeg_skip_scanlines(&cinfo, (JDIMENSION)top);
  int done = 0;
  while (done < lines) {
    JDIMENSION got = jpeg_read_scanlines(&cinfo, rows + done, (JDIMENSION)(lines - done));
    if (got == 0) {
      snprintf(message, MESSAGE_SIZE, "ends at row %d of %d", top + done, height);
      jpeg_destroy_decompress(&cinfo);
      free(rows);
      free(block);
      return -1;
    }
    done += (int)got;
  }
  for (int line = y - top; line < lines; line++) {
    const unsigned char *from = rows[line] + (size_t)(x - (int)crop_x) * (size_t)components;
    unsigned char *to = out + (long)(line - (y - top)) * row_stride;
    if (pixel_stride == components) {
      memcpy(to, from, (size_t)w * (size_t)components);
    } else {
      for (int column = 0; column < w; column++)
        memcpy(to + (long)column * pixel_stride, from + (size_t)column * (size_t)components,
               (size_t)components);
    }
  }
  jpeg_abort_decompress(&cinfo);      /* the rows below the region are not needed */
  jpeg_destroy_decompress(&cinfo);
  free(rows);
  free(block);
  return 0;
}
