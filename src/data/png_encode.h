// An 8-bit image to PNG bytes in memory (libpng), e.g. for a data: URL in a report.
#pragma once
#include <string>

#include "data/image.h"

namespace tv {

// Grey (c == 1), RGB (3) or RGBA (4), 8 bits a channel; the PNG file's bytes.
std::string encode_png(const ImageU8& img);

// The image shrunk (PIL's antialiased bilinear resize, aspect kept) so that neither side exceeds
// max_side, then as PNG bytes; an image already small enough is encoded as it is.
std::string encode_png_thumbnail(const ImageU8& img, int max_side);

}  // namespace tv
