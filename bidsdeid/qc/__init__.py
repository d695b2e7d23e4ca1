"""Quality control of defacing: renders, face check, reports (DESIGN.md section 6)."""
