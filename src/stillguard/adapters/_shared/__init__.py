"""What several adapter families share (private to ``stillguard.adapters``; the public names are
re-exported by the package itself).

* :mod:`.folders`: model folders and the files beside a pipeline (toys, safetensors checks,
  ``stillguard.json``, ``prompt_embeds.safetensors``);
* :mod:`.load`: dtypes and what every constructor shares (open a pipeline, the saved prompt, the
  merged settings, the memory switches, ``save_pretrained``);
* :mod:`.build`: the one builder of random-weight pipelines, for ``tiny()`` (seeded config dicts)
  and ``from_config()`` (a config-only folder);
* :mod:`.generate`: ``generate`` (the pipeline's own sampling) and the input helpers;
* :mod:`.capture`, :mod:`.recorder`, :mod:`.processors`: the capture mechanism (swap in recording
  attention processors, record block outputs, restore);
* :mod:`.flow`, :mod:`.flow_load`: flow-matching helpers and loaders (LTX-Video, HunyuanVideo).

Nothing here imports a family.
"""
