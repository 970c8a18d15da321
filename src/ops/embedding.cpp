#include "core/ops.h"
#include "core/profile.h"
#include "ops/arg_checks.h"
#include "ops/dispatch.h"

namespace tv::ops {

// ids may have any shape; y (or dy) is ids.shape + [D] for a table (or dtable) [V, D].
static void check_embedding(const char* op, const Tensor& ids, const Tensor& table, const char* table_name,
                            const Tensor& y, const char* y_name) {
  if (table.ndim() != 2) fail(op, ": ", table_name, " should be [V, D], got ", table.describe());
  check_contiguous(table, op, table_name);
  check_arg(ids, op, "ids", ids.shape(), DType::I32);
  Shape ys = ids.shape();
  ys.push_back(table.size(1));
  check_arg(y, op, y_name, ys, table.dtype());
}

void embedding_fwd(Tensor& y, const Tensor& ids, const Tensor& table) {
  TV_PROFILE("embedding_fwd");
  const char* op = "embedding_fwd";
  check_embedding(op, ids, table, "table", y, "y");
  const Device dev = common_device(op, &y, &ids, &table);
  check_index_range(ids, table.size(0), op, "ids", "table");
  TV_DISPATCH(dev, "embedding", table.dtype(), op,
                    TV_KERNEL(KT, embedding_fwd)(y.data<T>(), ids.data<int32_t>(), table.data<T>(), ids.numel(), table.size(0),
                                          table.size(1)));
}

void embedding_bwd(Tensor& dtable, const Tensor& dy, const Tensor& ids) {
  TV_PROFILE("embedding_bwd");
  const char* op = "embedding_bwd";
  check_embedding(op, ids, dtable, "dtable", dy, "dy");
  const Device dev = common_device(op, &dtable, &dy, &ids);
  check_index_range(ids, dtable.size(0), op, "ids", "dtable");
  TV_DISPATCH(dev, "embedding", dtable.dtype(), op,
                    TV_KERNEL(KT, embedding_bwd)(dtable.data<T>(), dy.data<T>(), ids.data<int32_t>(), ids.numel(),
                                          dtable.size(0), dtable.size(1)));
}

}  // namespace tv::ops
