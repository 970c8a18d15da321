#include <string>

#include "core/ops.h"
#include "harness/op_test.h"

using namespace tv;
using tvtest::at;

TV_OP_TEST(embedding, forward, CopiesRows) {
  Rng rng(21);
  for (DType dt : {DType::F32, DType::F64}) {
    Tensor table = tvtest::rand_tensor({10, 12}, dt, rng);
    Tensor ids = Tensor::from_i32({2, 4}, {3, 0, 9, 3, 7, 7, 1, 3});  // any shape; repeats allowed
    Tensor y = Tensor::empty({2, 4, 12}, dt);
    ops::embedding_fwd(y, ids, table);
    for (int n = 0; n < 8; ++n)
      for (int d = 0; d < 12; ++d)
        ASSERT_EQ(at(y, n * 12 + d), at(table, ids.data<int32_t>()[n] * 12 + d)) << "row " << n << " col " << d;
  }
}

TV_OP_TEST(embedding, forward, BackwardAddsRepeatsInOrder) {
  // Scatter-add must equal the plain serial loop bit for bit (no atomics, fixed order).
  Rng rng(22);
  const int N = 300, V = 17, D = 120;  // big enough to run in parallel
  Tensor ids = tvtest::rand_ids({N}, V, rng);
  Tensor dy = tvtest::rand_tensor({N, D}, DType::F32, rng);
  Tensor dtable = tvtest::rand_tensor({V, D}, DType::F32, rng);
  Tensor ref = dtable.clone();
  for (int n = 0; n < N; ++n)
    for (int d = 0; d < D; ++d) ref.data<float>()[ids.data<int32_t>()[n] * D + d] += dy.data<float>()[n * D + d];
  ops::embedding_bwd(dtable, dy, ids);
  for (int i = 0; i < V * D; ++i) ASSERT_EQ(dtable.data<float>()[i], ref.data<float>()[i]) << "element " << i;
}

TV_OP_TEST(embedding, forward, RejectsBadIds) {
  Tensor table = Tensor::zeros({10, 4}), y = Tensor::empty({3, 4});
  for (int32_t bad : {10, -1}) {
    Tensor ids = Tensor::from_i32({3}, {1, 2, bad});
    try {
      ops::embedding_fwd(y, ids, table);
      ADD_FAILURE() << "id " << bad << " accepted";
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find("ids[2] = " + std::to_string(bad)), std::string::npos) << msg;
      EXPECT_NE(msg.find("10 rows"), std::string::npos) << msg;
    }
    Tensor dtable = Tensor::zeros({10, 4});
    EXPECT_THROW(ops::embedding_bwd(dtable, y, ids), Error);
  }
  Tensor ids = Tensor::from_i32({3}, {1, 2, 3});
  Tensor y_bad = Tensor::empty({3, 5});
  EXPECT_THROW(ops::embedding_fwd(y_bad, ids, table), Error);
  Tensor ids_f = Tensor::zeros({3});
  EXPECT_THROW(ops::embedding_fwd(y, ids_f, table), Error);
}

TV_OP_TEST(embedding, gradcheck, Table) {
  Rng rng(23);
  Tensor table = tvtest::rand_tensor({9, 12}, DType::F64, rng);
  Tensor ids = Tensor::from_i32({7}, {4, 0, 8, 4, 2, 4, 0});
  Tensor probe = tvtest::rand_tensor({7, 12}, DType::F64, rng);
  auto loss = [&] {
    Tensor y = Tensor::empty({7, 12}, DType::F64);
    ops::embedding_fwd(y, ids, table);
    return tvtest::dot(y, probe);
  };
  // Run the backward twice: it accumulates, so half the sum is the gradient.
  Tensor dtable = Tensor::zeros(table.shape(), DType::F64);
  ops::embedding_bwd(dtable, probe, ids);
  ops::embedding_bwd(dtable, probe, ids);
  ops::scale_(dtable, 0.5);
  tvtest::expect_gradients(loss, {{"table", &table, &dtable}});
}
