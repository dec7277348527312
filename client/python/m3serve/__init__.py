"""m3serve: Python client of the m3serve M3IT data service.

    import m3serve
    client = m3serve.Client("127.0.0.1:50051")
    print(client.count(tasks=["vqa-v2"], languages=["zh"]).total)
    for batch in client.stream(tasks=["vqa-v2"], shard=(0, 4), shuffle=True, seed=17,
                               images="decoded", size=(224, 224)):
        for x in batch.instances:
            x.images[0]  # numpy uint8 array (H, W, 3)

The PyTorch dataset lives in ``m3serve.torch`` (imported separately, so the
client does not need torch).
"""

from m3serve._version import __version__
from m3serve.client import (Attribution, Batch, Catalog, Client, CountResult, GroupCount, Image, Instance,
                            M3ServeError, Plan, PlanComponent, Schedule, SourceAttribution, TaskInfo,
                            tls_credentials)

__all__ = ["__version__", "Attribution", "Batch", "Catalog", "Client", "CountResult", "GroupCount", "Image",
           "Instance", "M3ServeError", "Plan", "PlanComponent", "Schedule", "SourceAttribution", "TaskInfo",
           "tls_credentials"]
