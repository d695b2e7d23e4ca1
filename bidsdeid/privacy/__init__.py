"""The identity policy shared by every stage: the project key, keyed pseudonyms,
UIDs and date offsets, the identifiers collected from the inputs, and the leak scan."""
