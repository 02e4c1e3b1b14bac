// libjpeg-turbo (Debian libjpeg62-turbo-dev). jpeglib.h needs stdio.h (FILE, size_t) first.
#include <stdio.h>
#include <jpeglib.h>
