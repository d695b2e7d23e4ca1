"""What a site relies on around de-identification (issue 8).

* :mod:`.rules` and :mod:`.rules_file`: the site rules file (``--rules``): per-attribute
  actions that override the profile, and vocabularies for descriptions;
* :mod:`.stage`: the participant stages that put the rules in force (DICOM profile
  overrides, sidecar fields, values a rule keeps on purpose) and audit them;
* :mod:`.sidecar_rules`: the same rules applied to BIDS sidecar fields;
* :mod:`.idmap`: ``--id-map``, the site's own table of new participant labels;
* :mod:`.dryrun`: ``--dry-run``, a plan of everything a run would do, written privately;
* :mod:`.inventory`: ``--inventory-only`` and ``bidsdeid-inventory``, every distinct text
  value in the input headers, with counts;
* :mod:`.receive`, :mod:`.send`, :mod:`.ledger`, :mod:`.dicomnet`: PACS in and out with
  pynetdicom (``bidsdeid-receive``, ``--send-to``).

Everything these modules write goes to the private dir: rules audits, plans,
inventories, ledgers and receive logs can hold identifying values.
"""
