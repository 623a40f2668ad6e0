#include "common/metrics.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include "common/metrics_server.h"

namespace txn::common {
namespace {

TEST(Metrics, RendersCountersGaugesAndHistogramsInPrometheusTextFormat) {
  MetricsRegistry r;
  r.GetCounter("txn_total", "Transactions.", {{"outcome", "committed"}})->Inc(3);
  r.GetCounter("txn_total", "Transactions.", {{"outcome", "aborted"}})->Inc();
  r.GetGauge("in_doubt", "In doubt now.")->Set(2);
  Histogram* h = r.GetHistogram("lat_seconds", "Latency.", {{"p", "a\"b"}}, {0.1, 1});
  h->Observe(0.05);
  h->Observe(0.5);
  h->Observe(7);
  const std::string text = r.Render();
  EXPECT_NE(text.find("# HELP txn_total Transactions.\n# TYPE txn_total counter\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("txn_total{outcome=\"aborted\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("txn_total{outcome=\"committed\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE in_doubt gauge\nin_doubt 2\n"), std::string::npos);
  EXPECT_NE(text.find("lat_seconds_bucket{p=\"a\\\"b\",le=\"0.1\"} 1\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("lat_seconds_bucket{p=\"a\\\"b\",le=\"1\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("lat_seconds_bucket{p=\"a\\\"b\",le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("lat_seconds_sum{p=\"a\\\"b\"} 7.55\n"), std::string::npos);
  EXPECT_NE(text.find("lat_seconds_count{p=\"a\\\"b\"} 3\n"), std::string::npos);
}

TEST(Metrics, SameNameAndLabelsIsTheSameMetric) {
  MetricsRegistry r;
  EXPECT_EQ(r.GetCounter("c", "h", {{"a", "1"}}), r.GetCounter("c", "h", {{"a", "1"}}));
  EXPECT_NE(r.GetCounter("c", "h", {{"a", "1"}}), r.GetCounter("c", "h", {{"a", "2"}}));
}

TEST(Metrics, RefreshersRunBeforeRendering) {
  MetricsRegistry r;
  int n = 0;
  r.AddRefresher([&] { r.GetGauge("calls", "h")->Set(++n); });
  EXPECT_NE(r.Render().find("calls 1\n"), std::string::npos);
  EXPECT_NE(r.Render().find("calls 2\n"), std::string::npos);
}

TEST(MetricsServer, ServesMetricsOverHttpAndNothingElse) {
  MetricsRegistry r;
  r.GetCounter("served_total", "h")->Inc(5);
  auto server = MetricsServer::Start("127.0.0.1:0", &r);
  ASSERT_TRUE(server.ok()) << server.status();
  httplib::Client client("127.0.0.1", (*server)->port());
  auto res = client.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_NE(res->body.find("served_total 5\n"), std::string::npos);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  auto other = client.Get("/admin");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);
}

TEST(MetricsServer, BadAddressIsRefused) {
  MetricsRegistry r;
  EXPECT_EQ(MetricsServer::Start("nonsense", &r).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsServer::Start("127.0.0.1:99999", &r).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace txn::common
