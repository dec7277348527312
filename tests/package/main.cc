// consumer TARGET: the catalog's instance count, then every instance streamed
// (images none); prints "catalog N streamed M".
#include <iostream>

#include "client/dataset_client.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: consumer HOST:PORT\n";
    return 2;
  }
  m3serve::client::ClientOptions options;
  options.targets = {argv[1]};
  auto client = m3serve::client::DatasetClient::Create(options);
  if (!client.ok()) {
    std::cerr << client.status() << "\n";
    return 1;
  }
  auto catalog = (*client)->GetCatalog();
  if (!catalog.ok()) {
    std::cerr << catalog.status() << "\n";
    return 1;
  }
  m3serve::v1::StreamRequest request;
  request.mutable_images()->set_mode(m3serve::v1::IMAGE_MODE_NONE);
  auto stream = (*client)->Stream(request);
  m3serve::v1::InstanceBatch batch;
  uint64_t streamed = 0;
  while (true) {
    auto more = stream->Next(&batch);
    if (!more.ok()) {
      std::cerr << more.status() << "\n";
      return 1;
    }
    if (!*more) break;
    streamed += batch.instances_size();
  }
  std::cout << "catalog " << catalog->total_instances() << " streamed " << streamed << "\n";
  return 0;
}
